# sonograd patch for Sonic Pi: plays the cues of config/sonic-pi.toml.
#
# Run sonograd with `--mapping config/sonic-pi.toml` (OSC to UDP 4560), paste this buffer
# into Sonic Pi and press Run. Cues arrive as "/osc*/trigger/..." (the * matches the
# sender's address and port). For another machine, enable IO > Networked OSC.
#
#   /trigger/grad       i:layer_index f:note   (MIDI note from E minor pentatonic)
#   /trigger/loss       f:amp 0..1            (louder as the loss falls)
#   /trigger/epoch      i:epoch
#   /trigger/alarm      s:layer i:step        (NaN / Inf)
#   /trigger/explosion  f:total_norm          (total norm over 100)
#   /trigger/diagnosis/KIND  s:layer i:step   (the detector's diagnoses, each its own chord:
#                       exploding vanishing non_finite plateau oscillation dead_layer
#                       loss_spike stall)

set :loss_amp, 0.5

# One note per layer and gradient cue; layers are spread across the stereo field.
live_loop :sonograd_grad do
  use_real_time
  layer, note = sync "/osc*/trigger/grad"
  synth :pluck, note: note, pan: [[layer * 0.5 - 1, -1].max, 1].min,
        amp: 0.3 + get(:loss_amp) * 0.7, release: 0.2
end

# The loss sets the overall level and drives a quiet pad.
live_loop :sonograd_loss do
  use_real_time
  amp, = sync "/osc*/trigger/loss"
  set :loss_amp, amp
  synth :hollow, note: :e2, amp: amp * 0.4, attack: 0.1, release: 0.6
end

live_loop :sonograd_epoch do
  use_real_time
  epoch, = sync "/osc*/trigger/epoch"
  sample :bell_a, amp: 0.8
  puts "sonograd: epoch #{epoch} done"
end

live_loop :sonograd_alarm do
  use_real_time
  layer, step = sync "/osc*/trigger/alarm"
  sample :drum_cymbal_hard, amp: 1.5
  puts "sonograd: non-finite value in #{layer.empty? ? 'the loss' : layer} at step #{step}"
end

live_loop :sonograd_explosion do
  use_real_time
  norm, = sync "/osc*/trigger/explosion"
  sample :drum_splash_hard, amp: 1.2
  puts "sonograd: gradient explosion, total norm #{norm.round(1)}"
end

# The detector's diagnoses: one loop per kind, each its own two-note chord (the same as
# config/default.toml's), so a listener learns them apart.
{
  exploding:   [:a6, :ds7],                      # high tritone, shrill
  vanishing:   [:c2, :g2],                       # very low open fifth
  non_finite:  [:a4, :as4],                      # clashing minor second
  plateau:     [:g3, :g4],                       # flat octave
  oscillation: [hz_to_midi(330), hz_to_midi(336)], # two tones 6 Hz apart: it wobbles
  dead_layer:  [:a2, :c3],                       # low minor third
  loss_spike:  [:c6, :e6],                       # bright major third
  stall:       [:d3, :gs3],                      # low tritone: the run went quiet
}.each do |kind, chord|
  live_loop "sonograd_diagnosis_#{kind}".to_sym do
    use_real_time
    layer, step = sync "/osc*/trigger/diagnosis/#{kind}"
    synth :sine, note: chord, amp: 0.6, sustain: 0.3, release: 0.1
    puts "sonograd: diagnosis #{kind} in #{layer.empty? ? 'no layer' : layer} at step #{step}"
  end
end
