//! The one font the pictures use, embedded (DejaVu Sans, Bitstream Vera licence, see
//! `assets/fonts/`): no fontconfig or freetype needed at build or run time.

use std::sync::Once;

use plotters::style::FontStyle;

/// DejaVu Sans, as shipped under `assets/fonts/`.
const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name the plots ask for.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process).
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a known-good file compiled in: registering it cannot fail at run time
        // unless the file in the repository is broken, which the tests catch.
        if plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_err() {
            debug_assert!(false, "assets/fonts/DejaVuSans.ttf is not a valid font");
        }
    });
}
