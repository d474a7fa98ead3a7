//! Experiment (#16 item 3): container create+start of one bundle through runc and through youki's
//! libcontainer in the same process run, interleaved, alternating which goes first.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use libcontainer::{container::builder::ContainerBuilder, signal::Signal, syscall::syscall::SyscallType};

fn runc(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("runc").arg("--root").arg(root).args(args).status()?;
    anyhow::ensure!(st.success(), "runc {args:?}: {st}");
    Ok(())
}

fn wait_gone(pid: i32) {
    for _ in 0..500 {
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn runc_once(root: &Path, bundle: &Path, id: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    runc(root, &["create", "--bundle", bundle.to_str().unwrap(), id])?;
    runc(root, &["start", id])?;
    let took = t.elapsed();
    runc(root, &["kill", id, "KILL"])?;
    std::thread::sleep(Duration::from_millis(20));
    runc(root, &["delete", "--force", id])?;
    Ok(took)
}

fn lc_once(root: &Path, bundle: &Path, id: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut c = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(root)?
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()?;
    c.start()?;
    let took = t.elapsed();
    let pid = c.pid().map(|p| p.as_raw()).unwrap_or(0);
    c.kill(Signal::try_from("SIGKILL")?, true)?;
    // The init is our child: reap it.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    wait_gone(pid);
    c.delete(true)?;
    Ok(took)
}

fn p50(v: &mut [Duration]) -> f64 {
    v.sort();
    v[(v.len() - 1) / 2].as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bundle = PathBuf::from(&args[1]);
    let n: usize = args[2].parse()?;
    let runc_root = PathBuf::from("/run/exp-lc/runc");
    let lc_root = PathBuf::from("/run/exp-lc/youki");
    std::fs::create_dir_all(&runc_root)?;
    std::fs::create_dir_all(&lc_root)?;
    let (mut r, mut l) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (rid, lid) = (format!("exp-runc-{i}"), format!("exp-lc-{i}"));
        if i % 2 == 0 {
            r.push(runc_once(&runc_root, &bundle, &rid)?);
            l.push(lc_once(&lc_root, &bundle, &lid)?);
        } else {
            l.push(lc_once(&lc_root, &bundle, &lid)?);
            r.push(runc_once(&runc_root, &bundle, &rid)?);
        }
    }
    let (rp, lp) = (p50(&mut r), p50(&mut l));
    println!("create+start p50 over {n}: runc {rp:.2} ms, libcontainer {lp:.2} ms, ratio {:.2}x", lp / rp);
    println!("min: runc {:.2} ms, libcontainer {:.2} ms", r[0].as_secs_f64() * 1e3, l[0].as_secs_f64() * 1e3);
    Ok(())
}
