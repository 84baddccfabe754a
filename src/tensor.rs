//! A tensor is a shape plus f32 storage that is either owned or borrowed zero-copy from a memory map.

use memmap2::Mmap;
use std::sync::{Arc, OnceLock};

/// Where the f32 values live.
#[derive(Clone)]
pub enum Storage {
    Owned(Vec<f32>),
    /// `len` f32 values starting at byte `offset` of the mapping; `offset` is 4-byte aligned (checked by
    /// the constructor), and the mapping is kept alive by the `Arc`.
    Mapped {
        map: Arc<Mmap>,
        offset: usize,
        len: usize,
    },
    /// `len` bf16 values at byte `offset` (2-byte aligned) of the mapping, widened to f32 on the first
    /// [`Tensor::data`] call: a consumer that takes bf16 as it is ([`Tensor::raw_bf16`], the bf16 matmul's
    /// weight packing) never pays for the widening or holds the f32 copy.
    MappedBf16 {
        map: Arc<Mmap>,
        offset: usize,
        len: usize,
        widened: OnceLock<Vec<f32>>,
    },
}

#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    storage: Storage,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.storage {
            Storage::Owned(_) => "owned",
            Storage::Mapped { .. } => "mapped",
            Storage::MappedBf16 { .. } => "mapped bf16",
        };
        write!(f, "Tensor({:?}, {kind})", self.shape)
    }
}

impl Tensor {
    /// An owned tensor. Panics if `data.len()` is not the product of `shape` (engine invariant).
    pub fn from_vec(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "Tensor::from_vec: shape/data mismatch"
        );
        Tensor {
            shape,
            storage: Storage::Owned(data),
        }
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor::from_vec(shape, vec![0.0; n])
    }

    /// A view of `len` f32 values at byte `offset` of `map`. Returns `None` when the range is out of the
    /// mapping or `offset` is not 4-byte aligned (the caller then copies instead).
    pub fn mapped(shape: Vec<usize>, map: Arc<Mmap>, offset: usize) -> Option<Self> {
        let len: usize = shape.iter().product();
        let end = len.checked_mul(4)?.checked_add(offset)?;
        let base = map.as_ptr() as usize;
        if end > map.len() || !(base + offset).is_multiple_of(std::mem::align_of::<f32>()) {
            return None;
        }
        Some(Tensor {
            shape,
            storage: Storage::Mapped { map, offset, len },
        })
    }

    /// A view of `len` bf16 values at byte `offset` of `map`, widened lazily. `None` when out of the mapping or
    /// `offset` is odd (the caller then widens into owned storage).
    pub fn mapped_bf16(shape: Vec<usize>, map: Arc<Mmap>, offset: usize) -> Option<Self> {
        let len: usize = shape.iter().product();
        let end = len.checked_mul(2)?.checked_add(offset)?;
        if end > map.len() || !(map.as_ptr() as usize + offset).is_multiple_of(2) || cfg!(target_endian = "big") {
            return None;
        }
        Some(Tensor {
            shape,
            storage: Storage::MappedBf16 {
                map,
                offset,
                len,
                widened: OnceLock::new(),
            },
        })
    }

    /// The values as bf16 bits when that is how they are stored (a bf16 checkpoint), without widening.
    pub fn raw_bf16(&self) -> Option<&[u16]> {
        match &self.storage {
            // SAFETY: the constructor checked bounds and 2-byte alignment; any bit pattern is a valid u16.
            Storage::MappedBf16 { map, offset, len, .. } => {
                Some(unsafe { std::slice::from_raw_parts(map.as_ptr().add(*offset) as *const u16, *len) })
            }
            _ => None,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. } | Storage::MappedBf16 { .. })
    }

    pub fn data(&self) -> &[f32] {
        match &self.storage {
            Storage::Owned(v) => v,
            Storage::Mapped { map, offset, len } => {
                // SAFETY: the constructor checked bounds and 4-byte alignment; any bit pattern is a valid
                // f32; the mapping is read-only and outlives `self` through the Arc.
                unsafe { std::slice::from_raw_parts(map.as_ptr().add(*offset) as *const f32, *len) }
            }
            Storage::MappedBf16 { widened, .. } => widened.get_or_init(|| {
                let bits = self.raw_bf16().expect("bf16 storage");
                let v = bits.iter().map(|&b| f32::from_bits((b as u32) << 16)).collect();
                // Widened once: the bf16 pages need not stay resident beside the f32 copy.
                self.release_pages();
                v
            }),
        }
    }

    /// The same values in owned storage (a mapped view is copied; bf16 is widened), so that reading them never
    /// touches the mapping again (the model's small parameters: `model::primitives::owned_param`).
    pub fn into_owned(self) -> Tensor {
        match self.storage {
            Storage::Owned(_) => self,
            _ => Tensor::from_vec(self.shape.clone(), self.data().to_vec()),
        }
    }

    /// Mutable access; a mapped tensor is copied into owned storage first.
    pub fn data_mut(&mut self) -> &mut [f32] {
        if !matches!(self.storage, Storage::Owned(_)) {
            self.storage = Storage::Owned(self.data().to_vec());
        }
        match &mut self.storage {
            Storage::Owned(v) => v,
            _ => unreachable!(),
        }
    }

    /// Hand the pages of a mapped tensor back to the OS (`madvise(MADV_DONTNEED)`), for weights that were
    /// copied elsewhere (e.g. packed to bf16) and will not be read through this view again. Reading it again
    /// stays correct: the read-only file mapping faults the pages back in. Owned storage: nothing to do.
    pub fn release_pages(&self) {
        let (map, offset, bytes) = match &self.storage {
            Storage::Mapped { map, offset, len } => (map, *offset, *len * 4),
            Storage::MappedBf16 { map, offset, len, .. } => (map, *offset, *len * 2),
            Storage::Owned(_) => return,
        };
        // SAFETY: the mapping is a read-only file mapping; DONTNEED only drops resident pages, which are
        // re-read from the file on the next access, so no reader can observe a change.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, bytes) };
    }

    /// Map every page of a mapped tensor now (`madvise(MADV_POPULATE_READ)`, one call instead of a page fault
    /// per 4 KiB), for weights about to be read once in full. A no-op where the kernel lacks it (Linux < 5.14),
    /// on other systems (macOS has no such advice: the flag is Linux-only) or for owned storage: the reads then
    /// fault pages in as usual, the same bytes a little slower on the first pass.
    pub fn populate(&self) {
        #[cfg(target_os = "linux")]
        {
            let (map, offset, bytes) = match &self.storage {
                Storage::Mapped { map, offset, len } => (map, *offset, *len * 4),
                Storage::MappedBf16 { map, offset, len, .. } => (map, *offset, *len * 2),
                Storage::Owned(_) => return,
            };
            let _ = map.advise_range(memmap2::Advice::PopulateRead, offset, bytes);
        }
    }

    pub fn into_vec(self) -> Vec<f32> {
        match self.storage {
            Storage::Owned(v) => v,
            _ => self.data().to_vec(),
        }
    }
}
