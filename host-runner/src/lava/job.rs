//! The LAVA job definition `convtest lava-job` writes: deploy a pKVM-capable
//! kernel, the lab's ramdisk with convtest's board kit laid over it, boot
//! with `kvm-arm.mode=protected`, run the kit's convtest on the board's KVM
//! and record each result as a LAVA test case (cases.rs).
//!
//! - `qemu` (the device type every LAVA lab has, and `lava-run` here):
//!   deploy `to: tmpfs`, boot `method: qemu` on an arm64 `virt` machine with
//!   EL2 (`virtualization=on`, GICv3: what pKVM needs), `-cpu max`; the
//!   kernel command line goes in the kernel's `image_arg` (`-append`), as
//!   LAVA's qemu jobs pass it;
//! - any other device type (a board): deploy `to: tftp` with a DTB, boot
//!   `method: u-boot` (`commands: ramdisk`); the console comes from the
//!   device dictionary and pKVM's argument from the job's
//!   `context: extra_kernel_args`, which LAVA's u-boot templates append.
//!
//! The kit reaches the board as a ramdisk overlay (`overlays:` of the
//! ramdisk, a tar unpacked at [`KIT_DIR`]), so the board needs no network.
//! The test definition is inline: no repository to clone.

use super::cases::VERDICT_CASE;
use serde_norway::{Mapping, Value};

/// Where the kit is unpacked on the board.
pub const KIT_DIR: &str = "/convtest-kit";
/// The run's reports on the board.
pub const JSON_PATH: &str = "/tmp/convtest.json";
pub const KTAP_PATH: &str = "/tmp/convtest.ktap";
/// The line that carries the run's JSON report in the log (base64, one
/// line), so whoever reads the job's log has the report too.
pub const JSON_MARKER: &str = "convtest-json-base64:";
/// pKVM: the host kernel at EL1, KVM's hypervisor keeps EL2.
pub const PKVM_ARG: &str = "kvm-arm.mode=protected";
/// The device type `lava-run` runs here.
pub const QEMU: &str = "qemu";
/// What the test definition and its results are called in LAVA.
pub const DEFINITION: &str = "convtest";
/// The arm64 machine pKVM needs: EL2 and GICv3.
pub const QEMU_MACHINE: &str = "virt,virtualization=on,gic-version=3";

/// Something the job downloads: a URL and how it is compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub url: String,
    /// `gz`, `xz`, `zstd` or `bz2`, from the name; `None` when plain.
    pub compression: Option<&'static str>,
}

impl Artifact {
    pub fn new(url: &str) -> Artifact {
        let name = url.rsplit('/').next().unwrap_or(url);
        let compression = [
            (".gz", "gz"),
            (".tgz", "gz"),
            (".xz", "xz"),
            (".zst", "zstd"),
            (".bz2", "bz2"),
        ]
        .iter()
        .find(|(ext, _)| name.ends_with(ext))
        .map(|(_, c)| *c);
        Artifact {
            url: url.to_string(),
            compression,
        }
    }
}

/// Everything a job is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    pub device_type: String,
    pub job_name: String,
    /// A pKVM-capable arm64 kernel (an Image, plain or gzip'd).
    pub kernel: Artifact,
    /// The lab's root filesystem as a cpio ramdisk with a POSIX shell.
    pub ramdisk: Artifact,
    /// The board kit as a tar: `convtest` and `Image` at its top.
    pub kit: Artifact,
    /// The board's device tree (not for qemu, which makes its own).
    pub dtb: Option<Artifact>,
    /// Kernel arguments besides the console and [`PKVM_ARG`].
    pub kernel_args: Vec<String>,
    /// Arguments for `convtest run` on the board besides the kit's paths.
    pub run_args: Vec<String>,
    /// Regexes of the ramdisk's shell prompt.
    pub prompts: Vec<String>,
    /// qemu only: the virtual board's RAM and CPUs.
    pub memory_mib: u32,
    pub cpus: u32,
    /// The test action's timeout; the job's adds deploy and boot.
    pub test_minutes: u32,
    /// Arbitrary metadata for the lab's records.
    pub metadata: Vec<(String, String)>,
}

/// Minutes the deploy and the boot each get.
const DEPLOY_MINUTES: u32 = 10;
const BOOT_MINUTES: u32 = 10;

impl JobSpec {
    pub fn is_qemu(&self) -> bool {
        self.device_type == QEMU
    }

    /// The kernel command line a qemu boot passes (`-append`).
    pub fn qemu_cmdline(&self) -> String {
        let mut words = vec!["console=ttyAMA0".to_string(), PKVM_ARG.to_string()];
        words.extend(self.kernel_args.iter().cloned());
        words.join(" ")
    }

    /// What the board runs, one shell line each (LAVA runs them under
    /// `sh -e`: a failing run must not stop the cases from being recorded,
    /// so its status is printed instead).
    pub fn steps(&self) -> Vec<String> {
        let mut run = vec![
            "./convtest".to_string(),
            "run".into(),
            "--backend".into(),
            "vmm".into(),
            "--kernel".into(),
            "./Image".into(),
            "--json".into(),
            JSON_PATH.into(),
            "--ktap".into(),
            KTAP_PATH.into(),
        ];
        run.extend(self.run_args.iter().map(|a| shell_word(a)));
        vec![
            format!("cd {KIT_DIR}"),
            format!(
                "{} || echo \"convtest run exited $? (its verdict is the {VERDICT_CASE} case)\"",
                run.join(" ")
            ),
            format!("./convtest lava-cases {JSON_PATH}"),
            format!("echo \"{JSON_MARKER} $(base64 -w 0 {JSON_PATH})\""),
        ]
    }

    pub fn to_yaml(&self) -> String {
        let header = format!(
            "# LAVA job written by `convtest lava-job` (convtest {}): boot a pKVM\n\
             # kernel ({PKVM_ARG}), run convtest's board kit on its KVM, one LAVA\n\
             # test case per convtest test. Submit it to a lab (lavacli jobs submit)\n\
             # or run it with lava-run (scripts/lava-local.sh).\n",
            env!("CARGO_PKG_VERSION")
        );
        // Plain data with string keys: serialization cannot fail.
        header + &serde_norway::to_string(&self.to_value()).unwrap_or_default()
    }

    pub fn to_value(&self) -> Value {
        let test_minutes = self.test_minutes.max(1);
        let mut job = Mapping::new();
        job.insert(s("device_type"), s(&self.device_type));
        job.insert(s("job_name"), s(&self.job_name));
        job.insert(
            s("timeouts"),
            map([
                (
                    "job",
                    minutes(DEPLOY_MINUTES + BOOT_MINUTES + test_minutes + 5),
                ),
                ("action", minutes(DEPLOY_MINUTES.max(test_minutes))),
                ("connection", minutes(2)),
            ]),
        );
        job.insert(s("priority"), s("medium"));
        job.insert(s("visibility"), s("public"));
        if !self.metadata.is_empty() {
            let mut m = Mapping::new();
            for (k, v) in &self.metadata {
                m.insert(s(k), s(v));
            }
            job.insert(s("metadata"), Value::Mapping(m));
        }
        job.insert(s("context"), self.context());
        job.insert(
            s("actions"),
            Value::Sequence(vec![
                map([("deploy", self.deploy())]),
                map([("boot", self.boot())]),
                map([("test", self.test(test_minutes))]),
            ]),
        );
        Value::Mapping(job)
    }

    fn context(&self) -> Value {
        if self.is_qemu() {
            map([
                ("arch", s("arm64")),
                ("cpu", s("max")),
                ("machine", s(QEMU_MACHINE)),
                ("memory", Value::from(self.memory_mib)),
                (
                    "extra_options",
                    Value::Sequence(vec![s(&format!("-smp {}", self.cpus))]),
                ),
            ])
        } else {
            let mut args = vec![PKVM_ARG.to_string()];
            args.extend(self.kernel_args.iter().cloned());
            map([("extra_kernel_args", s(&args.join(" ")))])
        }
    }

    fn ramdisk(&self) -> Value {
        let mut kit = Mapping::new();
        kit.insert(s("url"), s(&self.kit.url));
        if let Some(c) = self.kit.compression {
            kit.insert(s("compression"), s(c));
        }
        kit.insert(s("format"), s("tar"));
        kit.insert(s("path"), s(KIT_DIR));
        let mut r = Mapping::new();
        if self.is_qemu() {
            r.insert(s("image_arg"), s("-initrd {ramdisk}"));
        }
        r.insert(s("url"), s(&self.ramdisk.url));
        if let Some(c) = self.ramdisk.compression {
            r.insert(s("compression"), s(c));
        }
        r.insert(s("format"), s("cpio.newc"));
        // tmpfs deploys lay LAVA's own overlay (the test shell) into the
        // ramdisk only when asked; tftp deploys always do, after the
        // downloads, and must not be asked again.
        let mut overlays = Mapping::new();
        if self.is_qemu() {
            overlays.insert(s("lava"), Value::Bool(true));
        }
        overlays.insert(s("kit"), Value::Mapping(kit));
        r.insert(s("overlays"), Value::Mapping(overlays));
        Value::Mapping(r)
    }

    fn deploy(&self) -> Value {
        let mut kernel = Mapping::new();
        if self.is_qemu() {
            kernel.insert(
                s("image_arg"),
                s(&format!(
                    "-kernel {{kernel}} -append \"{}\"",
                    self.qemu_cmdline()
                )),
            );
        }
        kernel.insert(s("url"), s(&self.kernel.url));
        if !self.is_qemu() {
            kernel.insert(s("type"), s("image"));
        }
        let mut d = Mapping::new();
        d.insert(s("timeout"), minutes(DEPLOY_MINUTES));
        d.insert(s("to"), s(if self.is_qemu() { "tmpfs" } else { "tftp" }));
        d.insert(s("os"), s("oe"));
        if self.is_qemu() {
            d.insert(
                s("images"),
                map([
                    ("kernel", Value::Mapping(kernel)),
                    ("ramdisk", self.ramdisk()),
                ]),
            );
        } else {
            d.insert(s("kernel"), Value::Mapping(kernel));
            d.insert(s("ramdisk"), self.ramdisk());
            if let Some(dtb) = &self.dtb {
                d.insert(s("dtb"), map([("url", s(&dtb.url))]));
            }
        }
        Value::Mapping(d)
    }

    fn boot(&self) -> Value {
        let mut b = Mapping::new();
        b.insert(s("timeout"), minutes(BOOT_MINUTES));
        if self.is_qemu() {
            b.insert(s("method"), s("qemu"));
            b.insert(s("media"), s("tmpfs"));
        } else {
            b.insert(s("method"), s("u-boot"));
            b.insert(s("commands"), s("ramdisk"));
        }
        b.insert(
            s("prompts"),
            Value::Sequence(self.prompts.iter().map(|p| s(p)).collect()),
        );
        Value::Mapping(b)
    }

    fn test(&self, test_minutes: u32) -> Value {
        let repository = map([
            (
                "metadata",
                map([
                    ("format", s("Lava-Test Test Definition 1.0")),
                    ("name", s(DEFINITION)),
                    (
                        "description",
                        s(
                            "convtest's memory-conversion tests on the board's pKVM, one case per test",
                        ),
                    ),
                ]),
            ),
            (
                "run",
                map([(
                    "steps",
                    Value::Sequence(self.steps().iter().map(|l| s(l)).collect()),
                )]),
            ),
        ]);
        map([
            ("timeout", minutes(test_minutes)),
            (
                "definitions",
                Value::Sequence(vec![map([
                    ("from", s("inline")),
                    ("name", s(DEFINITION)),
                    ("path", s("inline/convtest.yaml")),
                    ("repository", repository),
                ])]),
            ),
        ])
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

fn minutes(n: u32) -> Value {
    map([("minutes", Value::from(n))])
}

/// `word` quoted for sh when it needs it (a glob like `conv.*` would
/// otherwise be expanded on the board).
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(device_type: &str) -> JobSpec {
        JobSpec {
            device_type: device_type.into(),
            job_name: "convtest pKVM".into(),
            kernel: Artifact::new("file:///c/vmlinuz"),
            ramdisk: Artifact::new("https://lab/rootfs.cpio.gz"),
            kit: Artifact::new("file:///out/convtest-kit.tar.gz"),
            dtb: (device_type != QEMU).then(|| Artifact::new("https://lab/board.dtb")),
            kernel_args: vec!["loglevel=4".into()],
            run_args: vec!["--tests".into(), "conv.*,boot.plan".into()],
            prompts: vec!["board:.*# ".into()],
            memory_mib: 2048,
            cpus: 2,
            test_minutes: 20,
            metadata: vec![("kit".into(), "v1".into())],
        }
    }

    fn parsed(spec: &JobSpec) -> Value {
        serde_norway::from_str(&spec.to_yaml()).expect("the job is valid YAML")
    }

    fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
        path.iter().fold(v, |v, k| &v[*k])
    }

    #[test]
    fn a_qemu_job_has_what_lava_requires() {
        let job = parsed(&spec(QEMU));
        for key in [
            "device_type",
            "job_name",
            "timeouts",
            "priority",
            "visibility",
            "actions",
        ] {
            assert!(!job[key].is_null(), "{key} missing");
        }
        assert_eq!(job["device_type"], "qemu");
        assert_eq!(get(&job, &["timeouts", "job", "minutes"]), 45);
        let ctx = &job["context"];
        assert_eq!(
            (&ctx["arch"], &ctx["cpu"], &ctx["machine"], &ctx["memory"]),
            (
                &s("arm64"),
                &s("max"),
                &s("virt,virtualization=on,gic-version=3"),
                &Value::from(2048)
            )
        );
        assert_eq!(ctx["extra_options"][0], "-smp 2");
        let actions = job["actions"].as_sequence().expect("actions");
        let names: Vec<&str> = actions
            .iter()
            .filter_map(|a| a.as_mapping()?.keys().next()?.as_str())
            .collect();
        assert_eq!(names, ["deploy", "boot", "test"]);
        let deploy = &actions[0]["deploy"];
        assert_eq!((&deploy["to"], &deploy["os"]), (&s("tmpfs"), &s("oe")));
        let kernel = get(deploy, &["images", "kernel"]);
        assert_eq!(kernel["url"], "file:///c/vmlinuz");
        assert_eq!(
            kernel["image_arg"],
            "-kernel {kernel} -append \"console=ttyAMA0 kvm-arm.mode=protected loglevel=4\""
        );
        let ramdisk = get(deploy, &["images", "ramdisk"]);
        assert_eq!(
            (
                &ramdisk["image_arg"],
                &ramdisk["compression"],
                &ramdisk["format"]
            ),
            (&s("-initrd {ramdisk}"), &s("gz"), &s("cpio.newc"))
        );
        assert_eq!(get(ramdisk, &["overlays", "lava"]), &Value::Bool(true));
        let kit = get(ramdisk, &["overlays", "kit"]);
        assert_eq!(
            (
                &kit["url"],
                &kit["compression"],
                &kit["format"],
                &kit["path"]
            ),
            (
                &s("file:///out/convtest-kit.tar.gz"),
                &s("gz"),
                &s("tar"),
                &s(KIT_DIR)
            )
        );
        let boot = &actions[1]["boot"];
        assert_eq!((&boot["method"], &boot["media"]), (&s("qemu"), &s("tmpfs")));
        assert_eq!(boot["prompts"][0], "board:.*# ");
        let def = &actions[2]["test"]["definitions"][0];
        assert_eq!((&def["from"], &def["name"]), (&s("inline"), &s("convtest")));
        let steps: Vec<&str> = get(def, &["repository", "run", "steps"])
            .as_sequence()
            .expect("steps")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(steps[0], "cd /convtest-kit");
        assert!(
            steps[1].starts_with(
                "./convtest run --backend vmm --kernel ./Image --json /tmp/convtest.json \
                 --ktap /tmp/convtest.ktap --tests 'conv.*,boot.plan' || echo"
            ),
            "{}",
            steps[1]
        );
        assert_eq!(steps[2], "./convtest lava-cases /tmp/convtest.json");
        assert!(steps[3].contains(JSON_MARKER) && steps[3].contains("base64 -w 0"));
        assert_eq!(get(&job, &["metadata", "kit"]), "v1");
    }

    #[test]
    fn a_board_job_boots_u_boot_from_tftp_with_pkvm_in_the_context() {
        let job = parsed(&spec("rk3399-gru-kevin"));
        assert_eq!(job["device_type"], "rk3399-gru-kevin");
        assert_eq!(
            get(&job, &["context", "extra_kernel_args"]),
            "kvm-arm.mode=protected loglevel=4"
        );
        let deploy = &job["actions"][0]["deploy"];
        assert_eq!(deploy["to"], "tftp");
        assert_eq!(get(deploy, &["kernel", "type"]), "image");
        assert!(get(deploy, &["kernel", "image_arg"]).is_null());
        assert_eq!(get(deploy, &["dtb", "url"]), "https://lab/board.dtb");
        assert_eq!(
            get(deploy, &["ramdisk", "overlays", "kit", "path"]),
            KIT_DIR
        );
        assert!(get(deploy, &["ramdisk", "overlays", "lava"]).is_null());
        let boot = &job["actions"][1]["boot"];
        assert_eq!(
            (&boot["method"], &boot["commands"]),
            (&s("u-boot"), &s("ramdisk"))
        );
    }

    #[test]
    fn compression_comes_from_the_name() {
        assert_eq!(
            Artifact::new("http://x/rootfs.cpio.gz").compression,
            Some("gz")
        );
        assert_eq!(Artifact::new("file:///k/Image.xz").compression, Some("xz"));
        assert_eq!(Artifact::new("file:///k/kit.tgz").compression, Some("gz"));
        assert_eq!(Artifact::new("file:///k/vmlinuz").compression, None);
        assert_eq!(Artifact::new("file:///gz/Image").compression, None);
    }

    #[test]
    fn run_arguments_are_quoted_for_the_board_shell() {
        assert_eq!(shell_word("--reboots"), "--reboots");
        assert_eq!(shell_word("conv.*"), "'conv.*'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
