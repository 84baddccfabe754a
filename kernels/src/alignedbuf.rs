//! A zeroed, page-aligned buffer in its own anonymous mapping, for the packed operands of the bf16 matmul:
//! AMX tile rows are 64 bytes, and a tile whose rows straddle cache lines (a `Vec<u16>` from malloc starts 16
//! bytes into a line) costs twice the line fills (17-layer bf16 forward at T = 500: 0.78 s → 0.65 s). The
//! kernel hands out zero pages, so no memset is needed. (Transparent huge pages were tried and dropped: their
//! first-touch zeroing made load times swing between 0.2 and 1.5 s on this VM, with no gain in the forward.)

use std::ptr::NonNull;

/// `len` zeroed values of a plain-old-data `T` (any all-zero bit pattern is a valid `T`).
pub struct AlignedBuf<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: AlignedBuf owns its mapping exclusively, like a Vec<T>.
unsafe impl<T: Copy + Send> Send for AlignedBuf<T> {}
unsafe impl<T: Copy + Sync> Sync for AlignedBuf<T> {}

impl<T: Copy> AlignedBuf<T> {
    /// Panics (like `vec!`) if the mapping cannot be made: out of memory is not a user-input error.
    pub fn zeroed(len: usize) -> Self {
        Self::map(len, 0)
    }

    /// [`zeroed`](Self::zeroed), with every page mapped now (`MAP_POPULATE` on Linux: one call instead of a
    /// page fault per 4 KiB on first write), for a buffer about to be filled whole. Rounding an f32
    /// checkpoint's weights to bf16 at load (0.78 GB) ran 4 % faster in wall time and 7 % in CPU time this way
    /// (10 pairs, Xeon with AMX; `scripts/ab_cli.py`).
    pub fn zeroed_populated(len: usize) -> Self {
        #[cfg(target_os = "linux")]
        let flags = libc::MAP_POPULATE;
        #[cfg(not(target_os = "linux"))]
        let flags = 0;
        Self::map(len, flags)
    }

    fn map(len: usize, flags: libc::c_int) -> Self {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("AlignedBuf: size overflow");
        if bytes == 0 {
            return AlignedBuf {
                ptr: NonNull::dangling(),
                len,
            };
        }
        // SAFETY: a fresh private anonymous mapping (zero-filled by the kernel, page-aligned), checked for failure.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "AlignedBuf: cannot map {bytes} bytes");
            AlignedBuf {
                ptr: NonNull::new_unchecked(p as *mut T),
                len,
            }
        }
    }

    /// At least `len` values: a scratch buffer grows (to a new zeroed mapping) and never shrinks.
    pub fn grow(&mut self, len: usize) {
        if self.len < len {
            *self = AlignedBuf::zeroed(len);
        }
    }

    fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }
}

impl<T: Copy> std::ops::Deref for AlignedBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr is valid for len initialized (zeroed or written) values, or dangling with len·size 0.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> std::ops::DerefMut for AlignedBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Clone for AlignedBuf<T> {
    fn clone(&self) -> Self {
        let mut b = AlignedBuf::zeroed(self.len);
        b.copy_from_slice(self);
        b
    }
}

impl<T: Copy> Drop for AlignedBuf<T> {
    fn drop(&mut self) {
        if self.bytes() != 0 {
            // SAFETY: the mapping made in `zeroed`, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.bytes()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AlignedBuf;

    #[test]
    fn zeroed_writable_clonable() {
        let mut b = AlignedBuf::<u16>::zeroed(3 << 20);
        assert!(b.iter().all(|&v| v == 0));
        b[12345] = 7;
        let c = b.clone();
        assert_eq!(c[12345], 7);
        assert_eq!(c.len(), 3 << 20);
        assert!(AlignedBuf::<f32>::zeroed(0).is_empty());
        let p = AlignedBuf::<u16>::zeroed_populated(1 << 20);
        assert!(p.iter().all(|&v| v == 0) && (p.as_ptr() as usize).is_multiple_of(4096));
    }
}
