//! A zeroed buffer in its own anonymous mapping, advised to use transparent huge pages: weights copied at
//! load (e.g. packed to bf16) then fault in 2 MiB at a time instead of 4 KiB (on Linux with THP in `madvise`
//! or `always` mode; elsewhere it is an ordinary zeroed mapping).

use std::ptr::NonNull;

/// `len` zeroed values of a plain-old-data `T` (any all-zero bit pattern is a valid `T`).
pub struct HugeBuf<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: HugeBuf owns its mapping exclusively, like a Vec<T>.
unsafe impl<T: Copy + Send> Send for HugeBuf<T> {}
unsafe impl<T: Copy + Sync> Sync for HugeBuf<T> {}

impl<T: Copy> HugeBuf<T> {
    /// Panics (like `vec!`) if the mapping cannot be made: out of memory is not a user-input error.
    pub fn zeroed(len: usize) -> Self {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("HugeBuf: size overflow");
        if bytes == 0 {
            return HugeBuf {
                ptr: NonNull::dangling(),
                len,
            };
        }
        // SAFETY: a fresh private anonymous mapping (zero-filled by the kernel), checked for failure;
        // madvise only hints.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "HugeBuf: cannot map {bytes} bytes");
            libc::madvise(p, bytes, libc::MADV_HUGEPAGE);
            HugeBuf {
                ptr: NonNull::new_unchecked(p as *mut T),
                len,
            }
        }
    }

    /// At least `len` values: a scratch buffer grows (to a new zeroed mapping) and never shrinks.
    pub fn grow(&mut self, len: usize) {
        if self.len < len {
            *self = HugeBuf::zeroed(len);
        }
    }

    fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }
}

impl<T: Copy> std::ops::Deref for HugeBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr is valid for len initialized (zeroed or written) values, or dangling with len·size 0.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> std::ops::DerefMut for HugeBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Clone for HugeBuf<T> {
    fn clone(&self) -> Self {
        let mut b = HugeBuf::zeroed(self.len);
        b.copy_from_slice(self);
        b
    }
}

impl<T: Copy> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        if self.bytes() != 0 {
            // SAFETY: the mapping made in `zeroed`, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.bytes()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HugeBuf;

    #[test]
    fn zeroed_writable_clonable() {
        let mut b = HugeBuf::<u16>::zeroed(3 << 20);
        assert!(b.iter().all(|&v| v == 0));
        b[12345] = 7;
        let c = b.clone();
        assert_eq!(c[12345], 7);
        assert_eq!(c.len(), 3 << 20);
        assert!(HugeBuf::<f32>::zeroed(0).is_empty());
    }
}
