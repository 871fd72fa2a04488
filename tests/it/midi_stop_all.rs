//! The last-resort stop of a second Ctrl-C: `stop_all_notes` ends the notes of every MIDI
//! scheduler still running. Its own test binary, because it stops every scheduler in the
//! process. (tests/midi_jack.rs checks the same through a real JACK port and SIGINT.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sonograd::output::midi_sched::{stop_all_notes, MidiSink, SchedConfig, Scheduler};
use sonograd::output::midi_wire::Wire;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl MidiSink for Recorder {
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.lock().unwrap().push(bytes.to_vec());
        Ok(())
    }
}

#[test]
fn stop_all_notes_ends_what_every_open_scheduler_holds() {
    // stop_all_notes sees every scheduler of the process: no other test may hold one now.
    let _only = crate::common::lock(&crate::common::MIDI_SCHEDULERS);
    let (a, b, c) = (
        Recorder::default(),
        Recorder::default(),
        Recorder::default(),
    );
    let mut sa = Scheduler::spawn(Box::new(a.clone()), SchedConfig::default(), "a");
    let mut sb = Scheduler::spawn(Box::new(b.clone()), SchedConfig::default(), "b");
    let mut sc = Scheduler::spawn(Box::new(c.clone()), SchedConfig::default(), "c");
    sc.close(); // a closed one is skipped
    let t0 = Instant::now();
    let on = |note| Wire::NoteOn {
        ch: 0,
        note,
        vel: 100,
    };
    assert!(sa.send(on(60), 0, Some(Duration::from_secs(60)), t0));
    assert!(sb.send(on(64), 0, Some(Duration::from_secs(60)), t0));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(stop_all_notes(Duration::from_secs(2)), 2);
    for (rec, note) in [(&a, 60u8), (&b, 64u8)] {
        let got = rec.0.lock().unwrap().clone();
        assert!(got.contains(&vec![0x90, note, 100]), "{got:?}");
        assert!(
            got.contains(&vec![0x80, note, 0]),
            "note {note} left on: {got:?}"
        );
    }
    // Nothing left to stop, and closing afterwards is harmless.
    assert_eq!(stop_all_notes(Duration::from_millis(100)), 0);
    sa.close();
    sb.close();
}
