//! An AF_XDP socket with its own UMEM: the frame area and the four rings shared with
//! the kernel (fill and completion for the UMEM, RX and TX for the socket).

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes per frame: a DNS answer up to this less the headers goes out through XDP;
/// a larger one through the socket.
pub(super) const FRAME_SIZE: usize = 2048;
/// Frames per socket, and the size of every ring, so no ring can ever be full.
pub(super) const FRAMES: u32 = 4096;

/// A mapping released on drop.
struct Mapping {
    addr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: Option<RawFd>, len: usize, offset: u64) -> io::Result<Self> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping; the kernel picks the address.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset as libc::off_t,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            addr: NonNull::new(addr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and is unmapped once.
        unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len) };
    }
}

/// One ring: a producer index, a consumer index, flags and the entries.
struct Ring<T> {
    _mapping: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    entries: *mut T,
}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, offsets: &libc::xdp_ring_offset, page: u64) -> io::Result<Self> {
        let len = offsets.desc as usize + FRAMES as usize * size_of::<T>();
        let mapping = Mapping::new(Some(fd), len, page)?;
        let base = mapping.addr.as_ptr();
        // SAFETY: the kernel's offsets lie within the mapping it sized.
        unsafe {
            Ok(Self {
                producer: base.add(offsets.producer as usize).cast(),
                consumer: base.add(offsets.consumer as usize).cast(),
                entries: base.add(offsets.desc as usize).cast(),
                _mapping: mapping,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping; the kernel updates it atomically.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn write(&mut self, index: u32, value: T) {
        // SAFETY: `index & (FRAMES - 1)` is within the ring.
        unsafe {
            self.entries
                .add((index & (FRAMES - 1)) as usize)
                .write(value)
        }
    }

    fn read(&self, index: u32) -> T {
        // SAFETY: as for `write`.
        unsafe { self.entries.add((index & (FRAMES - 1)) as usize).read() }
    }

    /// Entries the kernel has produced and we have not consumed: (first, count).
    fn ready(&self) -> (u32, u32) {
        let consumer = self.consumer().load(Ordering::Relaxed);
        let producer = self.producer().load(Ordering::Acquire);
        (consumer, producer.wrapping_sub(consumer))
    }

    fn consume(&self, count: u32) {
        let consumer = self.consumer().load(Ordering::Relaxed);
        self.consumer()
            .store(consumer.wrapping_add(count), Ordering::Release);
    }

    /// Appends `values` (the caller keeps the ring from overflowing).
    fn produce(&mut self, values: impl IntoIterator<Item = T>) {
        let mut producer = self.producer().load(Ordering::Relaxed);
        for value in values {
            self.write(producer, value);
            producer = producer.wrapping_add(1);
        }
        self.producer().store(producer, Ordering::Release);
    }

    /// Entries the kernel has not yet taken.
    fn outstanding(&self) -> u32 {
        let producer = self.producer().load(Ordering::Relaxed);
        producer.wrapping_sub(self.consumer().load(Ordering::Acquire))
    }
}

/// An AF_XDP socket bound to one queue of one interface.
pub(super) struct XskSocket {
    fd: OwnedFd,
    umem: Mapping,
    fill: Ring<u64>,
    completion: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
}

// SAFETY: the rings and the UMEM are used by the one thread that owns the socket.
unsafe impl Send for XskSocket {}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_option<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size given.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
}

impl XskSocket {
    /// Creates the socket and its UMEM, hands every frame to the kernel and binds to
    /// `queue` of `ifindex`.
    pub(super) fn bind(ifindex: u32, queue: u32) -> io::Result<Self> {
        // SAFETY: plain socket creation.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(raw)?;
        // SAFETY: a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let raw = fd.as_raw_fd();
        let umem = Mapping::new(None, FRAMES as usize * FRAME_SIZE, 0)?;
        let registration = libc::xdp_umem_reg {
            addr: umem.addr.as_ptr() as u64,
            len: umem.len as u64,
            chunk_size: FRAME_SIZE as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        set_option(raw, libc::XDP_UMEM_REG, &registration)?;
        for ring in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
            libc::XDP_TX_RING,
        ] {
            set_option(raw, ring, &FRAMES)?;
        }
        // SAFETY: all-zero is valid for the plain C struct filled in by the kernel.
        let mut offsets: libc::xdp_mmap_offsets = unsafe { zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `offsets` has room for `len` bytes.
        check(unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut offsets as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        })?;
        let mut socket = Self {
            fill: Ring::map(raw, &offsets.fr, libc::XDP_UMEM_PGOFF_FILL_RING)?,
            completion: Ring::map(raw, &offsets.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
            rx: Ring::map(raw, &offsets.rx, libc::XDP_PGOFF_RX_RING as u64)?,
            tx: Ring::map(raw, &offsets.tx, libc::XDP_PGOFF_TX_RING as u64)?,
            umem,
            fd,
        };
        socket
            .fill
            .produce((0..u64::from(FRAMES)).map(|i| i * FRAME_SIZE as u64));
        let address = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `address` is a valid `sockaddr_xdp` of the size given.
        check(unsafe {
            libc::bind(
                raw,
                (&address as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })?;
        Ok(socket)
    }

    /// The descriptor (for the XSKMAP and `poll`).
    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The bytes of frame `addr` (`FRAME_SIZE` of them).
    pub(super) fn frame(&mut self, addr: u64) -> &mut [u8] {
        let start = (addr as usize / FRAME_SIZE) * FRAME_SIZE;
        assert!(
            start + FRAME_SIZE <= self.umem.len,
            "frame outside the UMEM"
        );
        // SAFETY: the range is within the UMEM; the kernel does not touch a frame
        // while we hold it (it came off the RX ring and is not yet on another).
        unsafe { std::slice::from_raw_parts_mut(self.umem.addr.as_ptr().add(start), FRAME_SIZE) }
    }

    /// Received frames, up to `max`: (first index, count); release them with
    /// [`Self::release_received`] after reading them with [`Self::received`].
    pub(super) fn peek_received(&self, max: u32) -> (u32, u32) {
        let (first, count) = self.rx.ready();
        (first, count.min(max))
    }

    /// The `i`-th received descriptor.
    pub(super) fn received(&self, index: u32) -> libc::xdp_desc {
        self.rx.read(index)
    }

    /// Gives `count` RX ring slots back to the kernel.
    pub(super) fn release_received(&self, count: u32) {
        self.rx.consume(count);
    }

    /// Returns frames to the kernel for receiving.
    pub(super) fn recycle(&mut self, addrs: impl IntoIterator<Item = u64>) {
        self.fill.produce(addrs);
    }

    /// Queues frames for sending (`(addr, len)`).
    pub(super) fn queue_send(&mut self, frames: impl IntoIterator<Item = (u64, u32)>) {
        self.tx
            .produce(frames.into_iter().map(|(addr, len)| libc::xdp_desc {
                addr,
                len,
                options: 0,
            }));
    }

    /// Moves sent frames from the completion ring back to the fill ring; how many.
    pub(super) fn reap_sent(&mut self) -> u32 {
        let (first, count) = self.completion.ready();
        if count > 0 {
            let completion = &self.completion;
            let mut producer = self.fill.producer().load(Ordering::Relaxed);
            for i in 0..count {
                let addr = completion.read(first.wrapping_add(i));
                self.fill.write(producer, addr);
                producer = producer.wrapping_add(1);
            }
            self.fill.producer().store(producer, Ordering::Release);
            completion.consume(count);
        }
        count
    }

    /// Frames queued for sending that the kernel has not taken yet.
    pub(super) fn unsent(&self) -> u32 {
        self.tx.outstanding()
    }

    /// Asks the kernel to send what is queued (copy mode sends in this call).
    pub(super) fn kick(&self) {
        if self.unsent() == 0 {
            return;
        }
        // SAFETY: a zero-length send on our own socket.
        unsafe {
            libc::sendto(
                self.fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
    }
}
