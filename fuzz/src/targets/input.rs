//! Reading the fuzz input: parameters off its front, read sizes drawn from a seed, and a
//! minimal `block_on` for futures whose I/O is always ready.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Reads parameter bytes off the front of a fuzz input; a short input reads as zeros.
pub struct Params<'a> {
    data: &'a [u8],
}

impl<'a> Params<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte (0 once the input is used up).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// One of `options`, chosen by the next byte.
    pub fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[usize::from(self.byte()) % options.len()]
    }

    /// Everything not read as a parameter.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// The largest read a [`Splitter`] makes, chosen by the top 3 bits of its seed.
const MAX_READ: [usize; 8] = [1, 2, 3, 5, 16, 100, 1500, usize::MAX];

/// Sizes of successive reads: pseudo-random in `1..=max`, from a one-byte seed (so the fuzzer
/// explores splits by mutating one byte), or everything at once.
pub struct Splitter {
    state: u64,
    max: usize,
}

impl Splitter {
    pub fn new(seed: u8) -> Self {
        Self {
            state: 0x9e37_79b9_7f4a_7c15 ^ (u64::from(seed) << 17) ^ u64::from(seed),
            max: MAX_READ[usize::from(seed >> 5)],
        }
    }

    /// One read of everything that is left.
    pub fn whole() -> Self {
        Self { state: 1, max: 0 }
    }

    /// How many of the `left` bytes the next read takes: 0 only when `left` is 0.
    pub fn next_len(&mut self, left: usize) -> usize {
        if left == 0 {
            return 0;
        }
        if self.max == 0 {
            return left;
        }
        // xorshift64*: cheap, deterministic, no dependency.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 16;
        let cap = self.max.min(left) as u64;
        1 + (r % cap) as usize
    }

    /// A coin flip from the same stream (used to make a reader return `Pending` sometimes).
    pub fn flip(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state & 1 == 1
    }
}

/// Polls `fut` to completion on this thread. For futures whose I/O never waits on anything
/// outside (readers over an in-memory slice), so a `Pending` is retried at once; a future
/// still pending after that many polls is a hang, reported as a panic.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    const MAX_POLLS: u32 = 1_000_000;
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("future still pending after {MAX_POLLS} polls over in-memory input");
}
