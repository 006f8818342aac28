//! An IN endpoint's data, from the device function (a plain thread) to the host's pending IN
//! requests (the server's tasks). A request with no data waits, as a device NAKs an IN token
//! until it has something to send.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
};

use tokio::sync::Notify;

/// How the host sees what is pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Each push is one transfer (a reply ends with a short packet): an ST-LINK reply.
    Transfers,
    /// A byte stream: a request takes as much as has arrived, up to its length (a UART's
    /// bytes through a USB-serial chip).
    Stream,
}

pub struct InPipe {
    framing: Framing,
    queue: Mutex<VecDeque<Vec<u8>>>,
    ready: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InPipe {
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
        }
    }

    pub fn push(&self, data: Vec<u8>) {
        if data.is_empty() && self.framing == Framing::Stream {
            return;
        }
        lock(&self.queue).push_back(data);
        self.ready.notify_one();
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes waiting (a bridge holds back while the host is not reading).
    pub fn buffered(&self) -> usize {
        lock(&self.queue).iter().map(Vec::len).sum()
    }

    /// Takes what one IN request of `max` bytes gets, if anything is there.
    pub fn try_take(&self, max: usize) -> Option<Vec<u8>> {
        let mut q = lock(&self.queue);
        let front = q.front_mut()?;
        match self.framing {
            Framing::Transfers => {
                if front.len() <= max {
                    q.pop_front()
                } else {
                    // The rest stays for the next request, as a device sends the remainder.
                    let rest = front.split_off(max);
                    Some(std::mem::replace(front, rest))
                }
            }
            Framing::Stream => {
                let mut out = Vec::new();
                while let Some(chunk) = q.front_mut() {
                    let room = max - out.len();
                    if chunk.len() <= room {
                        out.extend_from_slice(chunk);
                        q.pop_front();
                    } else {
                        out.extend(chunk.drain(..room));
                    }
                    if out.len() == max {
                        break;
                    }
                }
                Some(out)
            }
        }
    }

    /// Waits until something is pushed (a permit is kept when nobody waits).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Forgets everything (the device lost power or was reset).
    pub fn clear(&self) {
        lock(&self.queue).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_stay_apart_and_split_only_when_too_long() {
        let p = InPipe::new(Framing::Transfers);
        p.push(vec![1, 2]);
        p.push(vec![3, 4, 5]);
        assert_eq!(p.try_take(64), Some(vec![1, 2]));
        assert_eq!(p.try_take(2), Some(vec![3, 4]));
        assert_eq!(p.try_take(2), Some(vec![5]));
        assert_eq!(p.try_take(2), None);
    }

    #[test]
    fn a_stream_joins_chunks_up_to_the_request() {
        let p = InPipe::new(Framing::Stream);
        p.push(b"ab".to_vec());
        p.push(b"cde".to_vec());
        assert_eq!(p.buffered(), 5);
        assert_eq!(p.try_take(4), Some(b"abcd".to_vec()));
        assert_eq!(p.try_take(4), Some(b"e".to_vec()));
        assert_eq!(p.try_take(4), None);
    }
}
