//! Bakes libtorch's library folder into every binary's rpath (the sonograd binary, test
//! binaries, benches, doctests) so nothing needs `LD_LIBRARY_PATH` at run time.
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
