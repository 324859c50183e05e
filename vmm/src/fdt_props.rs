//! Tests' reading of a flattened device tree: every property as (node
//! path, name, value), a walk of the structure block (devicetree spec
//! 5.4) — enough to read back what the VMM's device-tree builders wrote.

pub fn props(blob: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let be32 = |at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
    let (structs, strings) = (be32(8), be32(12));
    let name_at = |off: usize| {
        let s = &blob[strings + off..];
        String::from_utf8(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
    };
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut at = structs;
    loop {
        let token = be32(at);
        at += 4;
        match token {
            1 => {
                let len = blob[at..].iter().position(|&b| b == 0).unwrap();
                path.push(String::from_utf8(blob[at..at + len].to_vec()).unwrap());
                at = (at + len + 1).next_multiple_of(4);
            }
            2 => {
                path.pop();
            }
            3 => {
                let (len, name) = (be32(at), be32(at + 4));
                at += 8;
                out.push((path.join("/"), name_at(name), blob[at..at + len].to_vec()));
                at = (at + len).next_multiple_of(4);
            }
            4 => {}
            9 => return out,
            t => panic!("token {t:#x} at {at:#x}"),
        }
    }
}
