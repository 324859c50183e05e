//! The word console: the own arm64 VMM's console device, which carries up to
//! eight bytes per MMIO access where a 16550 carries one (and is polled
//! besides). Under pKVM every console access is an exit through EL2, the
//! L1's KVM and the VMM — about half a millisecond under TCG — so what
//! output costs is the number of accesses. It uses no guest memory, so it
//! works when conversion is broken; a VMM that does not serve it answers
//! the ID load with 0 and the guest stays on its UART.
//!
//! Found through the device tree: a node with `compatible =
//! "convtest,word-console"` and one `reg`. Registers (offsets from `reg`'s
//! base), little-endian like the guest:
//!
//! | offset | access | meaning |
//! |---|---|---|
//! | 0x00 `ID` | 8-byte load | [`MAGIC`] when the VMM serves the device, 0 when it refuses it |
//! | 0x08 `TX` | store of 1, 2, 4 or 8 bytes | that many console bytes, the lowest-addressed first |
//! | 0x10 `RX` | 8-byte load | up to 7 input bytes in bytes 0..7, their count in byte 7 (0: none) |
//!
//! Every other access is ignored (loads read 0).

/// The device tree `compatible` of the node.
pub const COMPATIBLE: &str = "convtest,word-console";
pub const REG_ID: u64 = 0x00;
pub const REG_TX: u64 = 0x08;
pub const REG_RX: u64 = 0x10;
/// What the ID register reads when the device is served: "CTWORD01".
pub const MAGIC: u64 = u64::from_le_bytes(*b"CTWORD01");
/// Input bytes one RX load carries.
pub const RX_MAX: usize = 7;

/// One TX store: `width` bytes (1, 2, 4 or 8) of `value`, low byte first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Store {
    pub width: u8,
    pub value: u64,
}

/// The TX stores that carry `bytes`: whole words, then a 4-, 2- and 1-byte
/// tail as needed (at most three stores more than `len / 8`).
pub fn tx_stores(bytes: &[u8]) -> impl Iterator<Item = Store> + '_ {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        let width = [8usize, 4, 2, 1].into_iter().find(|&w| w <= rest.len())?;
        let (chunk, tail) = rest.split_at(width);
        rest = tail;
        let mut word = [0u8; 8];
        word[..width].copy_from_slice(chunk);
        Some(Store {
            width: width as u8,
            value: u64::from_le_bytes(word),
        })
    })
}

/// The bytes a TX store of `data` (its length is the access width) carries:
/// all of them, unless the width is not one a store can have (then none).
pub fn tx_bytes(data: &[u8]) -> &[u8] {
    match data.len() {
        1 | 2 | 4 | 8 => data,
        _ => &[],
    }
}

/// The RX word for the first up-to-seven bytes of `pending`, and how many
/// of them it carries.
pub fn rx_word(pending: &[u8]) -> (u64, usize) {
    let n = pending.len().min(RX_MAX);
    let mut word = [0u8; 8];
    word[..n].copy_from_slice(&pending[..n]);
    word[7] = n as u8;
    (u64::from_le_bytes(word), n)
}

/// The input bytes an RX word carries (a count above 7 is read as 7).
pub fn rx_bytes(word: u64) -> ([u8; RX_MAX], usize) {
    let b = word.to_le_bytes();
    let mut out = [0u8; RX_MAX];
    out.copy_from_slice(&b[..RX_MAX]);
    (out, usize::from(b[7]).min(RX_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn stores_carry_every_byte_in_order_with_the_fewest_accesses() {
        let text: Vec<u8> = (0..64u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=text.len() {
            let stores: Vec<Store> = tx_stores(&text[..len]).collect();
            let mut back = Vec::new();
            for s in &stores {
                assert!([1, 2, 4, 8].contains(&s.width));
                let w = usize::from(s.width);
                back.extend_from_slice(&s.value.to_le_bytes()[..w]);
                // What the VMM sees: `width` data bytes.
                assert_eq!(tx_bytes(&s.value.to_le_bytes()[..w]).len(), w);
            }
            assert_eq!(back, &text[..len], "length {len}");
            assert_eq!(stores.len(), len / 8 + (len % 8).count_ones() as usize);
        }
        assert_eq!(tx_stores(b"ok 1 x\n").count(), 3, "4 + 2 + 1");
        assert_eq!(
            tx_bytes(&[1, 2, 3]),
            &[] as &[u8],
            "no store is 3 bytes wide"
        );
    }

    #[test]
    fn rx_words_carry_seven_bytes_and_their_count() {
        let (w, n) = rx_word(b"convtest-ack 1 ok\n");
        assert_eq!(n, 7);
        assert_eq!(rx_bytes(w), (*b"convtes", 7));
        let (w, n) = rx_word(b"k\n");
        assert_eq!((n, rx_bytes(w).1), (2, 2));
        assert_eq!(&rx_bytes(w).0[..2], b"k\n");
        assert_eq!(rx_word(b""), (0, 0), "nothing: count 0");
        assert_eq!(rx_bytes(u64::MAX).1, RX_MAX, "a count above 7 is read as 7");
        assert_eq!(MAGIC.to_le_bytes(), *b"CTWORD01");
    }
}
