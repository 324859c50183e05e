//! The guest's breadcrumbs (convtest_proto::crumbs) as VMM facts, for an
//! end the guest could not report itself: what each CPU was doing and the
//! first exceptions its handlers saw before they tried to print.
//!
//! `crumbs=read crumbs_cpu0=test:reset.private_again/57 crumbs_cpu1=idle_after_job:3/8 exceptions=1 exc0=vector:14,pc:0x…,sp:0x…,addr:0x…,extra:0x…`
//! (after the slash: how many times that CPU's state changed). `crumbs=none`
//! when the image has no table, `crumbs=unreadable:…` when it cannot be read.

use super::facts::Facts;
use convtest_proto::crumbs::{self, WORDS};
use std::fmt::Display;

/// The facts for the table at `gpa`, read with `read(gpa, buf)`.
pub fn facts<E: Display>(
    gpa: Option<u64>,
    read: impl FnOnce(u64, &mut [u8]) -> Result<(), E>,
) -> Facts {
    let mut f = Facts::default();
    let Some(gpa) = gpa else {
        f.add("crumbs", "none");
        return f;
    };
    let mut buf = vec![0u8; WORDS * 8];
    if let Err(e) = read(gpa, &mut buf) {
        f.add("crumbs", format!("unreadable:{gpa:#x}:{e}"));
        return f;
    }
    let table = match crumbs::decode(&buf) {
        Ok(t) => t,
        Err(e) => {
            f.add("crumbs", format!("unreadable:{gpa:#x}:{e}"));
            return f;
        }
    };
    f.add("crumbs", "read");
    for (cpu, doing, changes) in &table.cpus {
        f.add(
            format!("crumbs_cpu{cpu}"),
            format!("{}/{changes}", doing.describe()),
        );
    }
    f.add("exceptions", table.exceptions);
    for (i, e) in table.first.iter().enumerate() {
        f.add(
            format!("exc{i}"),
            format!(
                "vector:{},pc:{:#x},sp:{:#x},addr:{:#x},extra:{:#x}",
                e.vector, e.pc, e.sp, e.addr, e.extra
            ),
        );
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::crumbs::{CPU_BASE, Doing, EXC_BASE, EXC_COUNT, LAYOUT, MAGIC};

    fn put(t: &mut [u8], i: usize, v: u64) {
        t[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn a_table_becomes_one_line_of_facts() {
        let mut t = vec![0u8; WORDS * 8];
        t[..16].copy_from_slice(&MAGIC);
        put(&mut t, 2, LAYOUT);
        put(&mut t, CPU_BASE + 2, Doing::Idle(3).encode());
        put(&mut t, CPU_BASE + 3, 8);
        put(&mut t, EXC_COUNT, 1);
        put(&mut t, EXC_BASE, 14);
        let f = facts(Some(0x1000), |gpa, buf: &mut [u8]| {
            assert_eq!(gpa, 0x1000);
            buf.copy_from_slice(&t);
            Ok::<(), String>(())
        });
        assert_eq!(
            f.line(),
            "# convtest-vmm: crumbs=read crumbs_cpu1=idle_after_job:3/8 exceptions=1 \
             exc0=vector:14,pc:0x0,sp:0x0,addr:0x0,extra:0x0\n"
        );
    }

    #[test]
    fn no_table_or_a_bad_one_says_so() {
        let none = facts(None, |_, _: &mut [u8]| Ok::<(), String>(()));
        assert_eq!(none.line(), "# convtest-vmm: crumbs=none\n");
        let failed = facts(Some(0x2000), |_, _: &mut [u8]| Err("EFAULT"));
        assert!(failed.line().contains("crumbs=unreadable:0x2000:EFAULT"));
        let zero = facts(Some(0x2000), |_, _: &mut [u8]| Ok::<(), String>(()));
        assert!(zero.line().contains("magic_overwritten"), "{}", zero.line());
    }
}
