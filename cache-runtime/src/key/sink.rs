//! Where the canonical encoding's bytes go ([`Sink`]) and how they are hashed: the first
//! 16 bytes in one word, hashed word-wise when that is all there is ([`xxh3_128_9to16`]),
//! else a stack buffer that moves to the heap when it outgrows it, hashed with xxh3-128.

use std::mem::MaybeUninit;
use xxhash_rust::xxh3::xxh3_128;

const STACK: usize = 128;

/// xxh3-128 (seed 0, default secret) of 9 to 16 bytes given as one little-endian word:
/// what `xxh3_128` computes for them, without the bytes ever being stored. Hashing bytes
/// just written to the stack reads them back across several stores, which the processor
/// cannot forward: a stall of more than ten cycles on the hit path of every function keyed
/// by one integer.
#[inline(always)]
fn xxh3_128_9to16(bytes: u128, len: usize) -> u128 {
    debug_assert!((9..=16).contains(&len));
    // The default secret's words 4 to 7, folded as xxh3 does for this length (seed 0).
    const FLIP_LO: u64 = 0x59973f0033362349;
    const FLIP_HI: u64 = 0xc202797692d63d58;
    const PRIME64_1: u64 = 0x9E3779B185EBCA87;
    const PRIME64_2: u64 = 0xC2B2AE3D27D4EB4F;
    const PRIME32_2: u64 = 0x85EBCA77;
    fn mul128(a: u64, b: u64) -> (u64, u64) {
        let m = u128::from(a) * u128::from(b);
        (m as u64, (m >> 64) as u64)
    }
    fn avalanche(mut h: u64) -> u64 {
        h ^= h >> 37;
        h = h.wrapping_mul(0x165667919E3779F9);
        h ^ (h >> 32)
    }
    let lo = bytes as u64;
    let hi = (bytes >> (8 * (len - 8))) as u64;
    let (mut m_lo, mut m_hi) = mul128(lo ^ hi ^ FLIP_LO, PRIME64_1);
    m_lo = m_lo.wrapping_add(((len - 1) as u64) << 54);
    let hi = hi ^ FLIP_HI;
    m_hi = m_hi.wrapping_add(hi).wrapping_add(u64::from(hi as u32).wrapping_mul(PRIME32_2 - 1));
    m_lo ^= m_hi.swap_bytes();
    let (h_lo, h_hi) = mul128(m_lo, PRIME64_2);
    let h_hi = h_hi.wrapping_add(m_hi.wrapping_mul(PRIME64_2));
    (u128::from(avalanche(h_hi)) << 64) | u128::from(avalanche(h_lo))
}

/// A byte buffer: its first 16 bytes in one word (registers, for the arguments of most
/// functions: one integer encodes in 11), then on the stack until it outgrows it. The
/// stack part is not zeroed: only its first `len` bytes are ever read, and they were
/// written first.
pub(crate) struct Sink {
    len: usize,
    /// The bytes while there are at most 16 and all came in whole words or bytes.
    head: u128,
    /// Whether the bytes moved from `head` to `stack` (or `heap`).
    spilled: bool,
    stack: [MaybeUninit<u8>; STACK],
    heap: Vec<u8>,
}

impl Sink {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Sink { len: 0, head: 0, spilled: false, stack: [MaybeUninit::uninit(); STACK], heap: Vec::new() }
    }

    /// Moves the bytes from `head` to the stack part.
    #[inline(always)]
    fn spill(&mut self) {
        if !self.spilled {
            self.spilled = true;
            let head = self.head.to_le_bytes();
            // SAFETY: `len <= 16 <= STACK`, and `u8` and `MaybeUninit<u8>` share a layout.
            unsafe { std::ptr::copy_nonoverlapping(head.as_ptr(), self.stack.as_mut_ptr().cast::<u8>(), self.len) };
        }
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.spill();
        if self.heap.capacity() == 0 && self.len + bytes.len() <= STACK {
            // SAFETY: `len + bytes.len() <= STACK`, and `u8` and `MaybeUninit<u8>` share a layout.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.stack.as_mut_ptr().add(self.len).cast::<u8>(),
                    bytes.len(),
                );
            }
            self.len += bytes.len();
        } else {
            if self.heap.capacity() == 0 {
                self.heap.reserve(self.len + bytes.len() + 64);
                // SAFETY: as in `stack_bytes` (spelled out to borrow `stack` apart from `heap`).
                let written = unsafe { std::slice::from_raw_parts(self.stack.as_ptr().cast::<u8>(), self.len) };
                self.heap.extend_from_slice(written);
            }
            self.heap.extend_from_slice(bytes);
        }
    }

    /// The bytes written to the stack part.
    #[inline(always)]
    fn stack_bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of `stack` have been written by `put` or `spill`.
        unsafe { std::slice::from_raw_parts(self.stack.as_ptr().cast::<u8>(), self.len) }
    }

    #[inline(always)]
    pub(crate) fn hash(&mut self) -> u128 {
        if !self.spilled && self.len >= 9 {
            return xxh3_128_9to16(self.head, self.len);
        }
        self.spill();
        xxh3_128(if self.heap.capacity() == 0 { self.stack_bytes() } else { &self.heap })
    }

    #[cfg(test)]
    pub(crate) fn take_vec(&mut self) -> Vec<u8> {
        self.spill();
        if self.heap.capacity() == 0 { self.stack_bytes().to_vec() } else { std::mem::take(&mut self.heap) }
    }
}

/// Where encoded bytes go.
pub trait Out {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
    /// Appends one byte.
    #[inline(always)]
    fn put_byte(&mut self, byte: u8) {
        self.put(&[byte]);
    }
    /// Appends a word, little-endian.
    #[inline(always)]
    fn put_u64(&mut self, word: u64) {
        self.put(&word.to_le_bytes());
    }
}

impl Out for Sink {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        Sink::put(self, bytes)
    }
    #[inline(always)]
    fn put_byte(&mut self, byte: u8) {
        if !self.spilled && self.len < 16 {
            self.head |= u128::from(byte) << (8 * self.len);
            self.len += 1;
        } else if self.spilled && self.heap.capacity() == 0 && self.len < STACK {
            self.stack[self.len] = MaybeUninit::new(byte);
            self.len += 1;
        } else {
            Sink::put(self, &[byte]);
        }
    }
    #[inline(always)]
    fn put_u64(&mut self, word: u64) {
        if !self.spilled && self.len <= 8 {
            self.head |= u128::from(word) << (8 * self.len);
            self.len += 8;
        } else {
            Sink::put(self, &word.to_le_bytes());
        }
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_hash_is_xxh3_of_the_bytes() {
        let mut x = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        for _ in 0..10_000 {
            x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835).wrapping_add(0x1234_5678_9abc);
            for len in 9..=16 {
                let word = if len == 16 { x } else { x & ((1u128 << (8 * len)) - 1) };
                assert_eq!(xxh3_128_9to16(word, len), xxh3_128(&word.to_le_bytes()[..len]), "{len} bytes of {word:#x}");
            }
        }
    }
}
