//! A global allocator that counts allocations made while the current thread is inside a
//! "forbidden" section (the audio callback), in the spirit of `assert_no_alloc`.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Counting;

thread_local! {
    static FORBID: Cell<bool> = const { Cell::new(false) };
    static THREAD_VIOLATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations (and reallocations, frees) seen inside forbidden sections.
pub static VIOLATIONS: AtomicU64 = AtomicU64::new(0);

fn check() {
    if FORBID.try_with(|f| f.get()).unwrap_or(false) {
        VIOLATIONS.fetch_add(1, Ordering::Relaxed);
        let _ = THREAD_VIOLATIONS.try_with(|v| v.set(v.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        check();
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Marks the current thread as inside (true) or outside (false) the forbidden section;
/// usable as `LiveOptions::rt_hook`.
pub fn forbid(on: bool) {
    let _ = FORBID.try_with(|f| f.set(on));
}

/// Violations so far.
pub fn violations() -> u64 {
    VIOLATIONS.load(Ordering::Relaxed)
}

/// Violations seen on the calling thread only: tests in one binary run on parallel threads,
/// and one of them allocates on purpose.
pub fn thread_violations() -> u64 {
    THREAD_VIOLATIONS.try_with(|v| v.get()).unwrap_or(0)
}
