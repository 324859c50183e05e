//! The machine a guest boots on: how it is loaded (`Boot`) and QEMU's
//! machine model (`Machine`). The guest's arch is proto's `Arch`.

use clap::ValueEnum;

/// How the guest is loaded (`--boot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Boot {
    Pvh,
    Bios,
    Uefi,
    Image,
}

impl Boot {
    pub fn as_str(self) -> &'static str {
        match self {
            Boot::Pvh => "pvh",
            Boot::Bios => "bios",
            Boot::Uefi => "uefi",
            Boot::Image => "image",
        }
    }

    /// Boots that go through a bootloader disk image.
    pub fn is_disk_image(self) -> bool {
        matches!(self, Boot::Bios | Boot::Uefi)
    }
}

/// QEMU's machine model (`--machine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Machine {
    Microvm,
    Pc,
    Virt,
    #[value(name = "virt-el2")]
    VirtEl2,
    /// x86 q35 (the machine `--tee` runs on; bios/uefi boots may pick it).
    Q35,
}

impl Machine {
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Pc => "pc",
            Machine::Virt => "virt",
            Machine::VirtEl2 => "virt-el2",
            Machine::Q35 => "q35",
        }
    }
}
