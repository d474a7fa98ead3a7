//! CRI Exec and Attach end to end through an independent SPDY/3.1 client (the npm package
//! spdy-transport, driven as kubelet's client drives remotecommand: tests/streaming/): exit
//! codes and the v4 status, stdin to EOF, 10 MB of output, a terminal that sees a resize,
//! attach to running tty and non-tty containers, single-use tokens, protocol refusal, and a
//! client killed mid-exec leaving no process behind. Real runc, the leak check after each.

mod common;

use std::{path::PathBuf, process::Command, sync::Once, time::Duration};

use common::{
    ctr::{busybox, create, ctr, exec, start},
    Client, Daemon,
};
use cri_api::v1::{AttachRequest, ExecRequest};
use tonic::Code;

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/streaming")
}

/// Installs the test's npm packages once (from the committed lock file).
fn npm_ci() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if client_dir().join("node_modules/spdy-transport").is_dir() {
            return;
        }
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(client_dir())
            .status()
            .expect("npm (Node 20) is on every machine");
        assert!(ok.success(), "npm ci in tests/streaming");
    });
}

/// Runs the SPDY remotecommand client against `url`; its JSON report.
fn spdy(url: &str, args: &[&str]) -> serde_json::Value {
    node("spdy_remotecommand.js", url, args)
}

/// Runs one of the npm clients; the JSON line it ends with.
fn node(script: &str, url: &str, args: &[&str]) -> serde_json::Value {
    node_with_ca(script, url, args, None)
}

/// [`node`] trusting `ca` (PEM) for https URLs.
fn node_with_ca(
    script: &str,
    url: &str,
    args: &[&str],
    ca: Option<&std::path::Path>,
) -> serde_json::Value {
    npm_ci();
    let mut cmd = Command::new("node");
    if let Some(ca) = ca {
        cmd.env("NODE_EXTRA_CA_CERTS", ca);
    }
    let out = cmd
        .arg(client_dir().join(script))
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

async fn exec_url(c: &mut Client, id: &str, cmd: &[&str], stdin: bool, tty: bool) -> String {
    c.exec(ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    })
    .await
    .unwrap()
    .into_inner()
    .url
}

fn status(report: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(report["error"].as_str().unwrap_or("")).unwrap_or_default()
}

#[tokio::test]
async fn exec_over_spdy_streams_exit_codes_stdin_output_and_a_terminal() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-exec")).await;
    let id = create(&mut c, &pod, ctr("target", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    exec_checks(&mut c, &id).await;
    identity_checks(&mut c, &pod, &env.image).await;
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

use common::RUNC_SHIM_HANDLER as SHIM_HANDLER;

async fn run_on_shim(d: &Daemon, c: &mut Client, name: &str) -> String {
    common::run_on_runc_shim(d, c, d.pod(name)).await
}

/// The same sessions through a containerd shim v2 (Debian's containerd-shim-runc-v2 as handler
/// `runc-shim`): the shim's Exec on FIFOs, ResizePty, CloseIO, Kill when the client dies.
#[tokio::test]
async fn exec_through_a_containerd_shim_over_spdy() {
    let d = Daemon::start_with(SHIM_HANDLER, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = run_on_shim(&d, &mut c, "stream-shim").await;
    let id = create(&mut c, &pod, ctr("target", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    exec_checks(&mut c, &id).await;
    // Stdin arrives however the shim's asynchronous opens of the FIFO fall: once, what was
    // written before the shim's reader was open went with crustd's end of the FIFO.
    for round in 0..8 {
        let url = exec_url(&mut c, &id, &["cat"], true, false).await;
        let r = spdy(
            &url,
            &[
                "--stdin",
                "round\n",
                "--stdout",
                "--stderr",
                "--timeout-ms",
                "8000",
            ],
        );
        assert_eq!(r["stdout"], "round\n", "round {round}: {r}");
    }
    killed_client_checks(&mut c, &id).await;
    identity_checks(&mut c, &pod, &env.image).await;
    // The exec'd process is the shim's (runc exec -d under it, then reparented to the shim, a
    // subreaper), where through the CLI `runc exec` stays its parent while it runs.
    let url = exec_url(&mut c, &id, &["sleep", "4243"], false, false).await;
    let client =
        std::thread::spawn(move || spdy(&url, &["--stdout", "--stderr", "--die-after-ms", "8000"]));
    let shims = common::eventually(Duration::from_secs(8), || async {
        parent_comm_of("sleep\x004243\x00").as_deref() == Some("containerd-shim")
    })
    .await;
    let parent = parent_comm_of("sleep\x004243\x00");
    assert!(shims, "the shim runs the exec; its parent: {parent:?}");
    client.join().unwrap();
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// An exec (ExecSync, and streaming with pipes and with a terminal) runs as the container's
/// process does: its user, groups, working dir and env; on a new container in `pod`.
async fn identity_checks(c: &mut Client, pod: &str, image: &str) {
    let mut config = ctr("user", image, "cd /tmp && exec sleep 1000");
    config.working_dir = "/tmp".into();
    config.linux = Some(cri_api::v1::LinuxContainerConfig {
        security_context: Some(cri_api::v1::LinuxContainerSecurityContext {
            run_as_user: Some(cri_api::v1::Int64Value { value: 1000 }),
            supplemental_groups: vec![4000],
            ..Default::default()
        }),
        ..Default::default()
    });
    let user = create(c, pod, config).await.unwrap();
    start(c, &user).await;
    let script = "echo $(id -u) $(id -G) $(pwd) $FROM_IMAGE";
    let (code, out, err) = common::ctr::exec(c, &user, script, 10).await.unwrap();
    assert_eq!(
        (code, out.trim()),
        (0, "1000 1000 2000 4000 /tmp 1"),
        "ExecSync: {err}"
    );
    for tty in [false, true] {
        let url = exec_url(c, &user, &["sh", "-c", script], false, tty).await;
        let args: &[&str] = match tty {
            true => &["--stdout", "--tty"],
            false => &["--stdout", "--stderr"],
        };
        let r = spdy(&url, args);
        let out = r["stdout"].as_str().unwrap_or("").trim().to_string();
        assert_eq!(out, "1000 1000 2000 4000 /tmp 1", "tty {tty}: {r}");
    }
}

/// The same sessions in gVisor (Debian's runsc as an `oci` handler): `runsc exec` with pipes
/// and with a terminal on the console socket, attach to containers whose stdio runsc took at
/// start.
#[tokio::test]
async fn exec_and_attach_inside_gvisor_over_spdy() {
    let d = Daemon::start_with(RUNSC_HANDLER, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(d.pod("stream-gvisor")),
            runtime_handler: "runsc".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()))
        .into_inner()
        .pod_sandbox_id;
    let id = create(&mut c, &pod, ctr("target", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    exec_checks(&mut c, &id).await;
    let url = exec_url(&mut c, &id, &["busybox", "dmesg"], false, false).await;
    let r = spdy(&url, &["--stdout", "--stderr"]);
    assert!(r["stdout"].as_str().unwrap_or("").contains("gVisor"), "{r}");
    identity_checks(&mut c, &pod, &env.image).await;
    attach_checks(&mut c, &pod, &env.image).await;
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

const RUNSC_HANDLER: &str = "[runtimes.runsc]\nruntime_args = [\"--network=host\"]\n";

/// The command name of the parent of the process whose `/proc/PID/cmdline` is `cmdline`.
fn parent_comm_of(cmdline: &str) -> Option<String> {
    let pid = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == cmdline.as_bytes()))?;
    let stat = std::fs::read_to_string(pid.path().join("stat")).ok()?;
    let ppid = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.to_string();
    let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok()?;
    Some(comm.trim().to_string())
}

/// Exit codes and the v4 status, single-use tokens, stdin to EOF, 10 MB, a killed process, a
/// terminal that sees the client's size, v3 and a refused version, on running container `id`.
async fn exec_checks(c: &mut Client, id: &str) {
    let url = exec_url(
        c,
        id,
        &["sh", "-c", "echo out; echo err >&2; exit 1"],
        false,
        false,
    )
    .await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = spdy(&url, &["--stdout", "--stderr"]);
    assert_eq!(r["httpStatus"], 101, "{r}");
    assert_eq!(r["protocol"], "v4.channel.k8s.io");
    assert_eq!(
        (r["stdout"].as_str(), r["stderr"].as_str()),
        (Some("out\n"), Some("err\n")),
        "{r}"
    );
    let s = status(&r);
    assert_eq!(s["reason"], "NonZeroExitCode", "{r}");
    assert_eq!(s["details"]["causes"][0]["message"], "1");
    // The token was single use.
    let again = spdy(&url, &["--stdout"]);
    assert_eq!(again["httpStatus"], 404, "{again}");

    let url = exec_url(c, id, &["cat"], true, false).await;
    let r = spdy(
        &url,
        &["--stdin", "through stdin\n", "--stdout", "--stderr"],
    );
    assert_eq!(r["stdout"], "through stdin\n", "{r}");
    assert_eq!(status(&r)["status"], "Success", "{r}");

    // 10 MB intact.
    let url = exec_url(
        c,
        id,
        &["sh", "-c", "yes 0123456789abcde | head -c 10485760"],
        false,
        false,
    )
    .await;
    let r = spdy(&url, &["--stdout", "--stderr"]);
    let line = b"0123456789abcde\n";
    let want: Vec<u8> = line.iter().cycle().take(10 << 20).copied().collect();
    use sha2::Digest as _;
    assert_eq!(r["stdoutBytes"], 10 << 20, "{}", r["error"]);
    assert_eq!(r["stdoutSha256"], hex::encode(sha2::Sha256::digest(&want)));

    let url = exec_url(c, id, &["sh", "-c", "kill -9 $$"], false, false).await;
    let r = spdy(&url, &["--stdout", "--stderr"]);
    assert_eq!(status(&r)["details"]["causes"][0]["message"], "137", "{r}");

    // A terminal, sized by the client's resize message.
    // The client sends its size when it opens the resize stream, which may land after the
    // command started (as with any runtime): the command waits for a size. busybox's stty fails
    // with no message while the height is 0, so only a real size ends the wait.
    let tries: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let wait_for_size = format!(
        "for i in {}; do s=$(/bin/busybox stty size 2>/dev/null); \
         case \"$s\" in ''|'0 '*) sleep 0.1;; *) break;; esac; done; echo $s",
        tries.join(" ")
    );
    let url = exec_url(c, id, &["sh", "-c", &wait_for_size], false, true).await;
    let r = spdy(&url, &["--stdout", "--tty", "--resize", "100x30"]);
    assert_eq!(r["stdout"].as_str().map(str::trim), Some("30 100"), "{r}");

    // An older client: v3 reports only failures, as text.
    let url = exec_url(c, id, &["true"], false, false).await;
    let r = spdy(
        &url,
        &["--stdout", "--stderr", "--protocols", "v3.channel.k8s.io"],
    );
    assert_eq!(
        (r["protocol"].as_str(), r["error"].as_str()),
        (Some("v3.channel.k8s.io"), Some("")),
        "{r}"
    );
    // A version the server does not speak is 403 with the ones it does.
    let url = exec_url(c, id, &["true"], false, false).await;
    let r = spdy(&url, &["--stdout", "--protocols", "v9.channel.k8s.io"]);
    assert_eq!(r["httpStatus"], 403, "{r}");
    assert!(
        r["accepted"]
            .as_str()
            .unwrap_or("")
            .contains("v4.channel.k8s.io"),
        "{r}"
    );
}

#[tokio::test]
async fn a_client_killed_mid_exec_leaves_no_process() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-kill")).await;
    let id = create(&mut c, &pod, ctr("target", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    killed_client_checks(&mut c, &id).await;
    // Validation happens before any URL: unknown, not running.
    let err = c
        .exec(ExecRequest {
            container_id: "d".repeat(64),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let stopped = create(&mut c, &pod, ctr("created", &env.image, "true"))
        .await
        .unwrap();
    let err = c
        .exec(ExecRequest {
            container_id: stopped,
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = c
        .exec(ExecRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            tty: true,
            stderr: true,
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// A client that dies mid-exec takes the exec'd process with it.
async fn killed_client_checks(c: &mut Client, id: &str) {
    let url = exec_url(c, id, &["sleep", "4242"], true, false).await;
    let r = spdy(
        &url,
        &[
            "--stdin",
            "x",
            "--keep-stdin",
            "--stdout",
            "--stderr",
            "--die-after-ms",
            "700",
        ],
    );
    assert_eq!(r["killed"], true);
    let gone = common::eventually(Duration::from_secs(10), || {
        let (mut c, id) = (c.clone(), id.to_string());
        async move {
            let (_, out, _) = exec(&mut c, &id, "ps", 5).await.unwrap();
            !out.contains("sleep 4242")
        }
    })
    .await;
    assert!(gone, "the exec'd process was killed with its session");
}

#[tokio::test]
async fn attach_to_running_containers_over_spdy() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-attach")).await;
    attach_checks(&mut c, &pod, &env.image).await;
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// The same sessions on a runc-shim container: task-io's attach socket, the shim's ResizePty
/// and CloseIO.
#[tokio::test]
async fn attach_through_a_containerd_shim_over_spdy() {
    let d = Daemon::start_with(SHIM_HANDLER, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = run_on_shim(&d, &mut c, "stream-attach-shim").await;
    attach_checks(&mut c, &pod, &env.image).await;
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// What a crustd crash leaves running stays reachable: after `kill -9` and a restart, attach
/// (crust-shim's socket for runc, task-io's for the runc shim) and exec (runc exec, the shim's
/// Exec on a reconnected shim) work on containers started before it, with stdin.
#[tokio::test]
async fn attach_and_exec_reach_containers_started_before_a_crustd_crash() {
    let mut d = Daemon::start_with(SHIM_HANDLER, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let runc_pod = d.run_config(&mut c, d.pod("crash-runc")).await;
    let shim_pod = run_on_shim(&d, &mut c, "crash-shim").await;
    let mut ids = Vec::new();
    for pod in [&runc_pod, &shim_pod] {
        let mut echo = ctr("echo", &env.image, "while read l; do echo got:$l; done");
        echo.stdin = true;
        let id = create(&mut c, pod, echo).await.unwrap();
        start(&mut c, &id).await;
        ids.push(id);
    }
    d.kill9();
    d.restart().await;
    let mut c = d.client().await;
    for id in &ids {
        let request = AttachRequest {
            container_id: id.clone(),
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let url = c.attach(request).await.unwrap().into_inner().url;
        let r = spdy(
            &url,
            &[
                "--stdin",
                "after the crash\n",
                "--keep-stdin",
                "--stdout",
                "--stderr",
                "--timeout-ms",
                "3000",
            ],
        );
        let out = r["stdout"].as_str().unwrap_or("");
        assert!(out.contains("got:after the crash"), "{id}: {r}");
        let url = exec_url(&mut c, id, &["cat"], true, false).await;
        let r = spdy(&url, &["--stdin", "exec'd\n", "--stdout", "--stderr"]);
        assert_eq!(r["stdout"], "exec'd\n", "{id}: {r}");
        assert_eq!(status(&r)["status"], "Success", "{r}");
    }
    common::stop_remove(&mut c, &runc_pod).await;
    common::stop_remove(&mut c, &shim_pod).await;
    d.assert_no_leaks().await;
}

/// Attach with stdin (piped and a terminal), a terminal's size, stdin_once, and the refusal of
/// stdin for a container without one, on new containers in `pod`.
async fn attach_checks(c: &mut Client, pod: &str, image: &str) {
    let mut echo = ctr(
        "echo",
        image,
        "while read l; do echo got:$l; echo e:$l >&2; done",
    );
    echo.stdin = true;
    let id = create(c, pod, echo).await.unwrap();
    start(c, &id).await;
    let url = c
        .attach(AttachRequest {
            container_id: id.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    // The client sends a line and closes stdin; the container keeps running (no stdin_once),
    // so the session ends when the client goes: read what arrived by then.
    let r = spdy(
        &url,
        &[
            "--stdin",
            "hello\n",
            "--keep-stdin",
            "--stdout",
            "--stderr",
            "--timeout-ms",
            "3000",
        ],
    );
    assert!(
        r["stdout"].as_str().unwrap_or("").contains("got:hello"),
        "{r}"
    );
    assert!(
        r["stderr"].as_str().unwrap_or("").contains("e:hello"),
        "{r}"
    );

    // A tty container; its output comes on stdout alone.
    let mut tty = ctr("tty", image, "while read l; do echo tty:$l; done");
    tty.stdin = true;
    tty.tty = true;
    let tty_id = create(c, pod, tty).await.unwrap();
    start(c, &tty_id).await;
    let url = c
        .attach(AttachRequest {
            container_id: tty_id.clone(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let r = spdy(
        &url,
        &[
            "--stdin",
            "hi\n",
            "--keep-stdin",
            "--stdout",
            "--tty",
            "--timeout-ms",
            "3000",
        ],
    );
    assert!(r["stdout"].as_str().unwrap_or("").contains("tty:hi"), "{r}");
    // The client's terminal size reaches a tty container through its shim.
    let mut sized = ctr(
        "sized",
        image,
        "while true; do /bin/busybox stty size 2>/dev/null; sleep 0.1; done",
    );
    sized.tty = true;
    let sized_id = create(c, pod, sized).await.unwrap();
    start(c, &sized_id).await;
    let url = c
        .attach(AttachRequest {
            container_id: sized_id,
            tty: true,
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let r = spdy(
        &url,
        &[
            "--stdout",
            "--tty",
            "--resize",
            "101x33",
            "--timeout-ms",
            "2000",
        ],
    );
    assert!(r["stdout"].as_str().unwrap_or("").contains("33 101"), "{r}");
    // Attach needs a running container with stdin when stdin is asked for.
    let plain = create(c, pod, ctr("no-stdin", image, "exec sleep 100"))
        .await
        .unwrap();
    start(c, &plain).await;
    let err = c
        .attach(AttachRequest {
            container_id: plain,
            stdin: true,
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // stdin_once: the first session's end is the container's EOF (cat ends, the container
    // exits with cat's status). What it printed after the session ended is not the session's.
    let mut once = ctr("once", image, "cat; exit 7");
    once.stdin = true;
    once.stdin_once = true;
    let once_id = create(c, pod, once).await.unwrap();
    start(c, &once_id).await;
    let url = c
        .attach(AttachRequest {
            container_id: once_id.clone(),
            stdin: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let r = spdy(&url, &["--stdin", "only\n", "--stdout", "--stderr"]);
    assert_eq!(r["httpStatus"], 101, "{r}");
    let s = common::ctr::wait_exited(c, &once_id).await;
    assert_eq!(s.exit_code, 7, "stdin ended with the session: {s:?}");
}

fn spdy_portforward(url: &str, args: &[&str]) -> serde_json::Value {
    node("spdy_portforward.js", url, args)
}

async fn forward_url(c: &mut Client, pod: &str) -> String {
    c.port_forward(cri_api::v1::PortForwardRequest {
        pod_sandbox_id: pod.into(),
        port: vec![],
    })
    .await
    .unwrap()
    .into_inner()
    .url
}

/// A busybox httpd serving `body` on `port` of 127.0.0.1 (in the pod's network namespace).
async fn httpd(
    c: &mut Client,
    pod: &str,
    image: &str,
    name: &str,
    port: u16,
    body: &str,
) -> String {
    httpd_on(c, pod, image, name, "127.0.0.1", port, body).await
}

/// A busybox httpd serving `body` on `host:port` (`[::1]` for IPv6 loopback only).
async fn httpd_on(
    c: &mut Client,
    pod: &str,
    image: &str,
    name: &str,
    host: &str,
    port: u16,
    body: &str,
) -> String {
    let script = format!(
        "mkdir -p /www && echo {body} > /www/index.html && exec /bin/busybox httpd -f -p {host}:{port} -h /www"
    );
    let id = create(c, pod, ctr(name, image, &script)).await.unwrap();
    start(c, &id).await;
    let up = common::eventually(Duration::from_secs(10), || {
        let (mut c, id) = (c.clone(), id.clone());
        async move {
            let probe = format!("/bin/busybox wget -q -O - http://{host}:{port}/");
            exec(&mut c, &id, &probe, 5)
                .await
                .is_ok_and(|(code, _, _)| code == 0)
        }
    })
    .await;
    assert!(up, "httpd on {port}");
    id
}

#[tokio::test]
async fn port_forward_into_pod_and_host_network_pods_over_spdy() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    // Pod network: the port is the pod's localhost, reached inside its pinned netns.
    let pod = d.run_config(&mut c, d.net_pod("forward", false)).await;
    httpd(&mut c, &pod, &env.image, "web", 8080, "from-the-pod").await;
    // A server on the pod's IPv6 loopback only: reached when 127.0.0.1 refuses.
    httpd_on(&mut c, &pod, &env.image, "web6", "[::1]", 8086, "from-ipv6").await;
    let url = forward_url(&mut c, &pod).await;
    let r = spdy_portforward(&url, &["--port", "8086"]);
    assert!(
        r["results"][0]["data"]
            .as_str()
            .unwrap_or("")
            .contains("from-ipv6"),
        "IPv6 loopback fallback: {r}"
    );
    let url = forward_url(&mut c, &pod).await;
    let r = spdy_portforward(&url, &["--port", "8080,1", "--requests", "10"]);
    assert_eq!(
        (r["httpStatus"].as_i64(), r["protocol"].as_str()),
        (Some(101), Some("portforward.k8s.io")),
        "{r}"
    );
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 20, "20 forwarded connections at once: {r}");
    for x in results {
        if x["port"] == 8080 {
            assert!(x["data"].as_str().unwrap().contains("from-the-pod"), "{x}");
            assert_eq!(x["error"], "", "{x}");
        } else {
            // A refused port is an error on its own request; the others went on.
            assert!(
                x["error"]
                    .as_str()
                    .unwrap()
                    .contains("failed to connect to localhost:1"),
                "{x}"
            );
        }
    }
    // Host network: the host's loopback (a free port, so nothing else of the host answers).
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host_pod = d.run_config(&mut c, d.pod("forward-host")).await;
    httpd(
        &mut c,
        &host_pod,
        &env.image,
        "host-web",
        free,
        "from-the-host-pod",
    )
    .await;
    let url = forward_url(&mut c, &host_pod).await;
    let r = spdy_portforward(&url, &["--port", &free.to_string()]);
    assert!(
        r["results"][0]["data"]
            .as_str()
            .unwrap_or("")
            .contains("from-the-host-pod"),
        "{r}"
    );
    // Only a READY pod can be forwarded to; an unknown one is NotFound.
    let err = c
        .port_forward(cri_api::v1::PortForwardRequest {
            pod_sandbox_id: "e".repeat(64),
            port: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    c.stop_pod_sandbox(cri_api::v1::StopPodSandboxRequest {
        pod_sandbox_id: host_pod.clone(),
    })
    .await
    .unwrap();
    let err = c
        .port_forward(cri_api::v1::PortForwardRequest {
            pod_sandbox_id: host_pod.clone(),
            port: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    for p in [&pod, &host_pod] {
        common::stop_remove(&mut c, p).await;
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn the_cli_execs_and_forwards_through_the_cri_urls() {
    use std::io::{BufRead, Read, Write};
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-cli")).await;
    let id = create(&mut c, &pod, ctr("t", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    let out = d
        .crust_cli()
        .args([
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "echo via-url; echo oops >&2; exit 4",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "the command's exit code is crust's"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-url\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let mut cat = d
        .crust_cli()
        .args(["exec", "-i", &id, "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    cat.stdin.take().unwrap().write_all(b"typed in\n").unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "typed in\n")
    );
    // port-forward: a free local port to an httpd on the host-network pod's loopback.
    let remote = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    httpd(&mut c, &pod, &env.image, "web", remote, "forwarded-by-cli").await;
    let mut pf = d
        .crust_cli()
        .args(["port-forward", &pod, &format!("0:{remote}")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(pf.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let local: u16 = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    for _ in 0..2 {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        assert!(reply.contains("forwarded-by-cli"), "{reply}");
    }
    pf.kill().unwrap();
    pf.wait().unwrap();
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn the_streaming_server_speaks_tls_when_configured() {
    let certs = tempfile::tempdir().unwrap();
    let ca = common::registry::self_signed(certs.path());
    let extra = format!(
        "[streaming]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        certs.path().join("cert.pem").display(),
        certs.path().join("key.pem").display()
    );
    let d = Daemon::start_with(&extra, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-tls")).await;
    let id = create(&mut c, &pod, ctr("t", &env.image, "exec sleep 100"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    let url = exec_url(&mut c, &id, &["echo", "over-tls"], false, false).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let r = node_with_ca(
        "spdy_remotecommand.js",
        &url,
        &["--stdout", "--stderr"],
        Some(&ca),
    );
    assert_eq!(r["stdout"], "over-tls\n", "{r}");
    // Without the CA the client refuses the server; plain http is not served on that port.
    let url = exec_url(&mut c, &id, &["true"], false, false).await;
    let r = node("spdy_remotecommand.js", &url, &["--stdout"]);
    assert!(
        r["error"].as_str().unwrap_or("").contains("request:"),
        "{r}"
    );
    let plain = url.replacen("https://", "http://", 1);
    let r = node("spdy_remotecommand.js", &plain, &["--stdout"]);
    assert_ne!(r["httpStatus"], 101, "{r}");
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// Sessions end on their own: a client that upgrades but opens no streams is dropped after
/// `stream_creation_timeout`, an idle port-forward session after `idle_timeout`; a request that
/// is not an upgrade is 400, an unknown token 404.
#[tokio::test]
async fn timeouts_and_malformed_requests_end_sessions_not_crustd() {
    let d = Daemon::start_with(
        "[streaming]\nidle_timeout = \"1s\"\nstream_creation_timeout = \"1s\"\n",
        &[],
    )
    .await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-timeouts")).await;
    let id = create(&mut c, &pod, ctr("t", &env.image, "exec sleep 100"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    let url = exec_url(&mut c, &id, &["true"], false, false).await;
    let http = |url: &str, upgrade: &str| {
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let path = url
            .trim_start_matches("http://")
            .trim_start_matches(&addr)
            .to_string();
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        use std::io::{Read, Write};
        write!(
            conn,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}Content-Length: 0\r\n\r\n"
        )
        .unwrap();
        // A refusal is answered on a kept-alive connection: read its head only. An upgrade is
        // read to its end, which the server's timeouts decide.
        let started = std::time::Instant::now();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let head_done = all.windows(4).any(|w| w == b"\r\n\r\n");
            if head_done && !all.starts_with(b"HTTP/1.1 101") {
                break;
            }
        }
        (
            String::from_utf8_lossy(&all).into_owned(),
            started.elapsed(),
        )
    };
    let (reply, _) = http(&url, "");
    assert!(reply.starts_with("HTTP/1.1 400"), "not an upgrade: {reply}");
    // The refused request did not use the token up; the upgrade does, and a session whose
    // client opens no streams ends after the stream creation timeout.
    let upgrade = "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n";
    let (reply, took) = http(&url, upgrade);
    assert!(reply.starts_with("HTTP/1.1 101"), "{reply}");
    assert!(
        took < Duration::from_secs(8),
        "closed after the 1 s stream creation timeout: {took:?}"
    );
    let (reply, _) = http(&url, upgrade);
    assert!(reply.starts_with("HTTP/1.1 404"), "used: {reply}");
    let url = forward_url(&mut c, &pod).await;
    let (reply, took) = http(&url, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n");
    assert!(reply.starts_with("HTTP/1.1 101"), "{reply}");
    assert!(
        took < Duration::from_secs(8),
        "an idle session closed after 1 s: {took:?}"
    );
    c.version(cri_api::v1::VersionRequest::default())
        .await
        .unwrap();
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// An issued URL is refused (404) once `token_ttl` has passed, unused or not, and crustd
/// keeps issuing fresh ones.
#[tokio::test]
async fn expired_tokens_are_refused() {
    let d = Daemon::start_with("[streaming]\ntoken_ttl = \"1s\"\n", &[]).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-expiry")).await;
    let url = forward_url(&mut c, &pod).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = spdy_portforward(&url, &["--port", "1"]);
    assert_eq!(r["httpStatus"], 404, "expired after 1 s: {r}");
    let fresh = forward_url(&mut c, &pod).await;
    assert_ne!(fresh, url, "a new token each time");
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// `crust exec -i -t` on a real terminal (a pty whose slave is crust's controlling terminal):
/// the local terminal is raw while the command runs and restored after, the remote terminal
/// starts at the local size and follows SIGWINCH, keys reach the command, its exit code is
/// crust's.
#[tokio::test]
async fn the_cli_exec_tty_is_raw_follows_resizes_and_restores_the_terminal() {
    use nix::sys::termios::{tcgetattr, LocalFlags};
    use std::{
        io::{Read, Write},
        os::{fd::AsRawFd, unix::process::CommandExt},
        sync::{Arc, Mutex},
    };
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-pty")).await;
    let id = create(&mut c, &pod, ctr("t", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    let size = |rows, cols| libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size(33, 77)), None).unwrap();
    let slave = pty.slave;
    // The first size travels on the resize stream after the command started (as with any
    // runtime and kubectl): wait for it, as a shell prompt would, before printing it. An empty
    // answer is no answer: the SIGWINCH that comes with the size can cut the shell's read of
    // the command substitution (seen once under load: the script printed an empty line).
    let script = "while :; do s=$(stty size 2>/dev/null); case \"$s\" in ''|'0 '*) sleep 0.05;; \
                  *) break;; esac; done; \
                  echo \"$s\"; while read a; do stty size; [ \"$a\" = q ] && exit 3; done";
    let mut cmd = d.crust_cli();
    cmd.args(["exec", "-i", "-t", &id, "--", "sh", "-c", script]);
    for fd in 0..3 {
        let dup = slave.try_clone().unwrap();
        match fd {
            0 => cmd.stdin(dup),
            1 => cmd.stdout(dup),
            _ => cmd.stderr(dup),
        };
    }
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; the pty becomes the controlling
    // terminal, so a size change sends crust SIGWINCH.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // its copies of the slave, or the reader never sees the terminal close
    let seen = Arc::new(Mutex::new(String::new()));
    let mut master = std::fs::File::from(pty.master);
    let reader = {
        let (mut master, seen) = (master.try_clone().unwrap(), Arc::clone(&seen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the last slave descriptor (crust's) is closed.
            while let Ok(n @ 1..) = master.read(&mut buf) {
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let shows = |text: &str| {
        let seen = Arc::clone(&seen);
        let text = text.to_string();
        async move { seen.lock().unwrap().contains(&text) }
    };
    let ok = common::eventually(Duration::from_secs(20), || shows("33 77")).await;
    assert!(
        ok,
        "the remote terminal starts at the local size: {:?}",
        seen
    );
    let flags = tcgetattr(&slave).unwrap().local_flags;
    assert!(
        !flags.intersects(LocalFlags::ICANON | LocalFlags::ECHO),
        "raw while the command runs: {flags:?}"
    );
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size(40, 100)) };
    assert_eq!(rc, 0);
    // The resize and the keys travel on different streams: ask again until the size shows.
    let mut resized = false;
    for _ in 0..100 {
        master.write_all(b"again\r").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if shows("40 100").await {
            resized = true;
            break;
        }
    }
    assert!(resized, "SIGWINCH resizes the remote terminal: {:?}", seen);
    master.write_all(b"q\r").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{:?}", seen);
    let flags = tcgetattr(&slave).unwrap().local_flags;
    assert!(
        flags.contains(LocalFlags::ICANON | LocalFlags::ECHO),
        "restored after: {flags:?}"
    );
    drop(slave);
    drop(master);
    reader.join().unwrap();
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}
