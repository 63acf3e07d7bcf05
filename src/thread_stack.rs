//! Gives back the pages of the calling thread's stack that lie below its live frames.
//!
//! A thread's stack keeps every page it touched until the thread ends. A writer's connect runs
//! deeper than its queries (the driver's connect future sits on the stack of its `block_on`):
//! a writer's stack held 40 KiB after connecting and 16 KiB when its connect ran elsewhere
//! (`/proc/PID/smaps`), so after each connect it hands the pages below its frames back, and
//! again when it has been idle (`store::WRITER_IDLE`). `main` does the same before it waits for
//! a signal: start-up ran deeper than that wait.

use std::mem::MaybeUninit;

/// Bytes below this call's marker that stay mapped: the rest of this function's frame, the
/// return address of the `madvise` call and the 128-byte red zone its wrapper may use, a few
/// hundred bytes. A whole page (the margin before) kept one more page of each released stack
/// resident whenever the marker was not near its page's bottom.
const MARGIN_BYTES: usize = 1024;

/// Releases the calling thread's stack pages that lie wholly below `MARGIN_BYTES` under this
/// call's frame: the frames that used them have returned, and a deeper call later gets fresh
/// zeroed pages. Does nothing when the stack's bounds cannot be read.
#[inline(never)]
pub fn release_unused() {
    let marker = std::hint::black_box(0u8);
    let here = std::ptr::addr_of!(marker) as usize;
    let Some(low) = stack_low() else {
        return;
    };
    let page = page_size();
    let end = here.saturating_sub(MARGIN_BYTES) & !(page - 1);
    if end > low {
        // SAFETY: [low, end) is this thread's own stack below every live frame (the deepest,
        // this one and madvise's, lie above `end`); MADV_DONTNEED makes those pages read as
        // zero on their next touch, which is what an unused stack page may hold.
        unsafe {
            libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED);
        }
    }
}

/// The lowest usable address of the calling thread's stack.
fn stack_low() -> Option<usize> {
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_getattr_np initialises `attr` when it returns 0; it is destroyed once,
    // after its last use.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let mut address = std::ptr::null_mut();
        let mut size = 0;
        let read = libc::pthread_attr_getstack(attr.as_ptr(), &mut address, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        (read == 0 && size > 0).then_some(address as usize)
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Touches `depth` bytes of stack below the caller, and returns a value computed from them.
    #[inline(never)]
    fn deep(depth: usize) -> u64 {
        let mut block = [0u8; 64 * 1024];
        let block = std::hint::black_box(&mut block[..depth]);
        block
            .iter_mut()
            .enumerate()
            .for_each(|(i, byte)| *byte = i as u8);
        block.iter().map(|&byte| u64::from(byte)).sum()
    }

    /// Resident KiB of the mapping that holds `address` (`/proc/self/smaps`).
    fn resident_kib(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&address);
            } else if inside && let Some(rss) = line.strip_prefix("Rss:") {
                return rss.trim().trim_end_matches(" kB").parse().unwrap();
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    #[test]
    fn the_pages_below_go_back_and_the_live_frames_keep_their_data() {
        std::thread::spawn(|| {
            let kept = std::hint::black_box([7u8; 2048]);
            let here = std::ptr::addr_of!(kept) as usize;
            let expected: u64 = (0..60 * 1024).map(|i| u64::from(i as u8)).sum();
            assert_eq!(deep(60 * 1024), expected);
            let before = resident_kib(here);
            release_unused();
            let after = resident_kib(here);
            assert!(before >= after + 48, "{before} -> {after} KiB");
            assert!(kept.iter().all(|&byte| byte == 7));
            // A deep call afterwards gets working pages again.
            assert_eq!(deep(60 * 1024), expected);
        })
        .join()
        .unwrap();
    }
}
