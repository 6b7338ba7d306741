//! Start-up alone, for profiling: writes the bench's 256-member fixture
//! into DIR once (if DIR is empty), then opens the store and starts the
//! engine RUNS times, printing each run's wall and process CPU time.
//!
//! `cargo run --release --example startup -- DIR RUNS`

use std::path::PathBuf;
use std::time::Instant;

use rgmerge::bench::{start_up, wait_until_closed, write_startup_fixture};
use rgmerge::synth::Spec;

fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: startup DIR RUNS")?);
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if !dir.join(rgmerge::store::FILE_NAME).exists() {
        let spec = Spec {
            entities: 1000,
            conflicts: 0.0,
            seed: 1,
        };
        write_startup_fixture(&dir, 256, &spec)?;
        // The first start-up stores nothing new but settles the store.
        drop(start_up(&dir)?);
        wait_until_closed(&dir);
    }
    for _ in 0..runs {
        wait_until_closed(&dir);
        let (t, c) = (Instant::now(), cpu_ms());
        let engine = start_up(&dir)?;
        println!(
            "wall {:.1} ms cpu {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3,
            cpu_ms() - c
        );
        drop(engine);
    }
    wait_until_closed(&dir);
    Ok(())
}
