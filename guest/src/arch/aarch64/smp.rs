//! Secondary CPU start (see `crate::smp` for the contract).

use crate::smp::StartError;

/// Starts CPU `cpu` (hardware id `hw_id`) on `stack_top`, entering
/// `crate::smp::secondary_main(cpu)`.
pub fn start_cpu(cpu: usize, hw_id: u64, stack_top: u64) -> Result<(), StartError> {
    let _ = (cpu, hw_id, stack_top);
    Err(StartError::Unsupported(
        "this guest build cannot start secondary CPUs yet",
    ))
}
