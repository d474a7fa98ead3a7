"""An independent CRI client (Python grpcio, stubs compiled from the vendored api.proto) against a
real crustd and real runc. grpcio is told to send the socket path as :authority, as Go clients did.

Run by scripts/test.sh with CRUSTD pointing at the binary and PYTHONPATH at the generated stubs.
"""

import os
import signal
import subprocess
import tempfile
import time

import grpc
import pytest

import api_pb2 as pb
import api_pb2_grpc as rpc

CRUSTD = os.environ.get("CRUSTD", "target/debug/crustd")


@pytest.fixture
def daemon():
    d = tempfile.mkdtemp(prefix="crust-test-py-")
    socket = os.path.join(d, "crust.sock")
    config = os.path.join(d, "config.toml")
    with open(config, "w") as f:
        # No CNI config and no embedded default: NetworkReady must be false, POD pods refused.
        f.write(f'[cni]\nconf_dir = "{d}/net.d"\ndefault_network = false\n')
    log = open(os.path.join(d, "crustd.log"), "w")
    proc = subprocess.Popen(
        [CRUSTD, "--socket", socket, "--root", d + "/root", "--state", d + "/state", "--config", config],
        stdout=log, stderr=log,
    )
    channel = grpc.insecure_channel("unix://" + socket, options=[("grpc.default_authority", socket)])
    stub = rpc.RuntimeServiceStub(channel)
    for _ in range(200):
        try:
            stub.Version(pb.VersionRequest(), timeout=1)
            break
        except grpc.RpcError:
            time.sleep(0.05)
    cgroup = "/" + os.path.basename(d)
    try:
        yield stub, d, cgroup
    finally:
        # A test that failed midway leaves its pods: remove them through CRI (what a failing test
        # made is still cleaned up), then check that crust itself left nothing.
        try:
            for p in stub.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items:
                stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
                stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
        except grpc.RpcError:
            pass
    channel.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    leaks = leftovers(d, cgroup)
    subprocess.run(["rm", "-rf", d])
    assert not leaks, leaks


def leftovers(d, cgroup):
    out = []
    with open("/proc/self/mountinfo") as f:
        out += [line for line in f if d in line]
    runc_root = os.path.join(d, "state", "runtime", "runc")
    listed = subprocess.run(["runc", "--root", runc_root, "list", "-q"], capture_output=True, text=True)
    out += [c for c in listed.stdout.split() if c]
    records = os.path.join(d, "root", "sandboxes")
    if os.path.isdir(records):
        out += os.listdir(records)
    for controller in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", controller, cgroup.lstrip("/"))
        if os.path.isdir(base):
            out += [os.path.join(base, c) for c in os.listdir(base) if os.path.isdir(os.path.join(base, c))]
            os.rmdir(base)
    return out


def host_pod(name, cgroup):
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="py", uid="uid-" + name, attempt=1),
        hostname=name,
        labels={"app": name},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            ),
        ),
    )


def test_version_and_status(daemon):
    stub, _, _ = daemon
    v = stub.Version(pb.VersionRequest())
    assert v.runtime_name == "crust" and v.runtime_api_version == "v1"
    conds = {c.type: c for c in stub.Status(pb.StatusRequest()).status.conditions}
    assert conds["RuntimeReady"].status
    assert not conds["NetworkReady"].status
    assert conds["NetworkReady"].reason == "NetworkPluginNotReady"


def test_host_network_pod_lifecycle(daemon):
    stub, _, cgroup = daemon
    pod_id = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=host_pod("py-web", cgroup))).pod_sandbox_id
    assert len(pod_id) == 64
    status = stub.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert status.state == pb.SANDBOX_READY
    assert status.metadata.attempt == 1
    items = stub.ListPodSandbox(
        pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector={"app": "py-web"}))
    ).items
    assert [p.id for p in items] == [pod_id]
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    status = stub.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert status.state == pb.SANDBOX_NOTREADY
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    with pytest.raises(grpc.RpcError) as err:
        stub.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_bad_input_gets_clear_codes(daemon):
    stub, _, cgroup = daemon
    bad = host_pod("x", cgroup)
    bad.ClearField("metadata")
    with pytest.raises(grpc.RpcError) as err:
        stub.RunPodSandbox(pb.RunPodSandboxRequest(config=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.metadata" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.RunPodSandbox(pb.RunPodSandboxRequest(config=host_pod("x", cgroup), runtime_handler="nope"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    pod_net = host_pod("y", cgroup)
    pod_net.linux.security_context.namespace_options.network = pb.POD
    with pytest.raises(grpc.RpcError) as err:
        stub.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_net))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no CNI network config" in err.value.details()
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id="f" * 64))
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id="f" * 64))
    with pytest.raises(grpc.RpcError) as err:
        stub.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=""))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.Exec(pb.ExecRequest(container_id="c", cmd=["true"], stdout=True))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.ExecSync(pb.ExecSyncRequest(container_id="c", cmd=["true"]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.ListPodSandbox(pb.ListPodSandboxRequest()).items == []


def free_port():
    import socket as s

    with s.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def registry():
    """Debian's docker-registry on a free loopback port, with its own storage."""
    import urllib.request

    d = tempfile.mkdtemp(prefix="crust-registry-py-")
    addr = f"127.0.0.1:{free_port()}"
    config = os.path.join(d, "config.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n"
                f"http:\n  addr: {addr}\n")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{addr}/v2/", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    yield addr
    proc.kill()
    proc.wait()
    subprocess.run(["rm", "-rf", d])


def push_image(addr, repo, tag):
    """Builds a one-layer OCI image (busybox-static) with the standard library and pushes it."""
    import gzip
    import hashlib
    import io
    import json
    import tarfile
    import urllib.request

    def digest(data):
        return "sha256:" + hashlib.sha256(data).hexdigest()

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.add("/bin/busybox", arcname="bin/busybox")
    layer_tar = raw.getvalue()
    layer = gzip.compress(layer_tar)
    config = json.dumps({"architecture": "amd64" if os.uname().machine == "x86_64" else "arm64", "os": "linux",
                         "config": {"User": "1000"}, "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]}}).encode()
    for blob in (layer, config):
        start = urllib.request.urlopen(urllib.request.Request(f"http://{addr}/v2/{repo}/blobs/uploads/", method="POST"))
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else f"http://{addr}{location}"
        urllib.request.urlopen(urllib.request.Request(
            f"{url}{sep}digest={digest(blob)}", data=blob, method="PUT",
            headers={"Content-Type": "application/octet-stream"}))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(layer), "size": len(layer)}],
    }).encode()
    urllib.request.urlopen(urllib.request.Request(
        f"http://{addr}/v2/{repo}/manifests/{tag}", data=manifest, method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
    return digest(config), digest(manifest)


def test_pull_list_status_remove_over_grpcio(daemon, registry):
    _, d, _ = daemon
    socket = os.path.join(d, "crust.sock")
    channel = grpc.insecure_channel("unix://" + socket, options=[("grpc.default_authority", socket)])
    images = rpc.ImageServiceStub(channel)
    image_id, manifest_digest = push_image(registry, "py/busybox", "1.0")
    ref = f"{registry}/py/busybox:1.0"
    got = images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref))).image_ref
    assert got == image_id
    status = images.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))).image
    assert status.id == image_id and list(status.repo_tags) == [ref]
    assert list(status.repo_digests) == [f"{registry}/py/busybox@{manifest_digest}"]
    assert status.uid.value == 1000
    assert [i.id for i in images.ListImages(pb.ListImagesRequest()).images] == [image_id]
    with pytest.raises(grpc.RpcError) as err:
        images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=f"{registry}/py/missing:1")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="UPPER/case")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)))
    images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)))
    assert images.ListImages(pb.ListImagesRequest()).images == []
    assert os.listdir(os.path.join(d, "root", "images", "snapshots")) == []
    channel.close()


def test_container_lifecycle_over_grpcio(daemon, registry):
    stub, d, cgroup = daemon
    socket = os.path.join(d, "crust.sock")
    channel = grpc.insecure_channel("unix://" + socket, options=[("grpc.default_authority", socket)])
    images = rpc.ImageServiceStub(channel)
    push_image(registry, "py/busybox", "1.0")
    ref = f"{registry}/py/busybox:1.0"
    images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
    pod = host_pod("py-ctr", cgroup)
    pod.log_directory = os.path.join(d, "logs")
    pod_id = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id

    def config(name, script):
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=ref),
            command=["/bin/busybox", "sh", "-c", script], log_path=name + ".log")

    done = stub.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config("done", "echo py-hello; exit 9"), sandbox_config=pod)).container_id
    stub.StartContainer(pb.StartContainerRequest(container_id=done))
    for _ in range(100):
        status = stub.ContainerStatus(pb.ContainerStatusRequest(container_id=done)).status
        if status.state == pb.CONTAINER_EXITED:
            break
        time.sleep(0.05)
    assert status.state == pb.CONTAINER_EXITED and status.exit_code == 9
    with open(os.path.join(d, "logs", "done.log")) as f:
        assert " stdout F py-hello" in f.read()
    runner = stub.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config("runner", "exec /bin/busybox sleep 1000"), sandbox_config=pod)).container_id
    stub.StartContainer(pb.StartContainerRequest(container_id=runner))
    out = stub.ExecSync(pb.ExecSyncRequest(container_id=runner, cmd=["/bin/busybox", "echo", "via-exec"], timeout=10))
    assert out.exit_code == 0 and out.stdout == b"via-exec\n"
    listed = stub.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod_id))).containers
    assert sorted(c.id for c in listed) == sorted([done, runner])
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert stub.ContainerStatus(pb.ContainerStatusRequest(container_id=runner)).status.state == pb.CONTAINER_EXITED
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert stub.ListContainers(pb.ListContainersRequest()).containers == []
    channel.close()


def test_v036_streaming_lists_stop_signal_and_verbose_status(daemon, registry):
    """The RPCs and fields cri-api v0.36.3 added, through stubs generated from that file."""
    import json
    stub, d, cgroup = daemon
    socket = os.path.join(d, "crust.sock")
    channel = grpc.insecure_channel("unix://" + socket, options=[("grpc.default_authority", socket)])
    images = rpc.ImageServiceStub(channel)
    push_image(registry, "py/busybox", "2.0")
    ref = f"{registry}/py/busybox:2.0"
    images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
    pods = [stub.RunPodSandbox(pb.RunPodSandboxRequest(config=host_pod(f"py-s{i}", cgroup))).pod_sandbox_id
            for i in range(3)]
    streamed = [p.id for m in stub.StreamPodSandboxes(pb.StreamPodSandboxesRequest()) for p in m.pod_sandboxes]
    assert sorted(streamed) == sorted(pods)
    one = [p.id for m in stub.StreamPodSandboxes(pb.StreamPodSandboxesRequest(
        filter=pb.PodSandboxFilter(label_selector={"app": "py-s1"}))) for p in m.pod_sandboxes]
    assert one == [pods[1]]
    status = stub.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pods[0])).status
    assert dict(status.labels) == {"app": "py-s0"}, "exactly the client's labels"
    cfg = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="sig"), image=pb.ImageSpec(image=ref),
        command=["/bin/busybox", "sleep", "1000"], stop_signal=pb.SIGINT,
        envs=[pb.KeyValue(key="RAW", value=b"bytes-value")])
    ctr = stub.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pods[0], config=cfg)).container_id
    assert stub.ContainerStatus(pb.ContainerStatusRequest(container_id=ctr)).status.stop_signal == pb.SIGINT
    stub.StartContainer(pb.StartContainerRequest(container_id=ctr))
    out = stub.ExecSync(pb.ExecSyncRequest(container_id=ctr, cmd=["/bin/busybox", "sh", "-c", "echo $RAW"], timeout=10))
    assert out.stdout == b"bytes-value\n"
    ctrs = [c.id for m in stub.StreamContainers(pb.StreamContainersRequest()) for c in m.containers]
    assert ctrs == [ctr]
    stats = [s for m in stub.StreamContainerStats(pb.StreamContainerStatsRequest()) for s in m.container_stats]
    assert [s.attributes.id for s in stats] == [ctr]
    pod_stats = [s for m in stub.StreamPodSandboxStats(pb.StreamPodSandboxStatsRequest())
                 for s in m.pod_sandbox_stats]
    assert sorted(s.attributes.id for s in pod_stats) == sorted(pods)
    imgs = [i for m in images.StreamImages(pb.StreamImagesRequest()) for i in m.images]
    assert any(ref in i.repo_tags for i in imgs)
    info = stub.Status(pb.StatusRequest(verbose=True)).info
    assert info and all(json.loads(v) is not None for v in info.values())
    for p in pods:
        stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p))
        stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p))
    assert list(stub.StreamPodSandboxes(pb.StreamPodSandboxesRequest())) == []
    channel.close()


def test_v036_metrics_and_pod_resources(daemon):
    import json
    stub, d, cgroup = daemon
    pod = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=host_pod("py-metrics", cgroup))).pod_sandbox_id
    descriptors = {m.name: list(m.label_keys) for m in stub.ListMetricDescriptors(pb.ListMetricDescriptorsRequest()).descriptors}
    assert descriptors["container_memory_working_set_bytes"][:3] == ["id", "name", "image"]
    metrics = stub.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest()).pod_metrics
    assert [m.pod_sandbox_id for m in metrics] == [pod]
    for m in metrics[0].metrics:
        assert len(m.label_values) == len(descriptors[m.name]), m
    assert any(m.name == "container_cpu_usage_seconds_total" for m in metrics[0].metrics)
    streamed = [p.pod_sandbox_id for batch in stub.StreamPodSandboxMetrics(pb.StreamPodSandboxMetricsRequest())
                for p in batch.pod_sandbox_metrics]
    assert streamed == [pod]
    stub.UpdatePodSandboxResources(pb.UpdatePodSandboxResourcesRequest(
        pod_sandbox_id=pod, resources=pb.LinuxContainerResources(cpu_shares=256, memory_limit_in_bytes=64 << 20)))
    info = json.loads(stub.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True)).info["info"])
    assert info["podResources"]["resources"]["cpu_shares"] == 256
    with pytest.raises(grpc.RpcError) as err:
        stub.UpdatePodSandboxResources(pb.UpdatePodSandboxResourcesRequest(pod_sandbox_id="0" * 64))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.CheckpointContainer(pb.CheckpointContainerRequest(container_id="c"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and "criu" in err.value.details()
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))


def ws_session(url, protocol, send=(), timeout=20):
    """Runs a remotecommand/port-forward WebSocket session with websocket-client: sends the
    (channel, bytes) messages, then collects what arrives per channel until the server closes."""
    import base64
    import websocket

    ws = websocket.create_connection(url.replace("http://", "ws://"), subprotocols=[protocol], timeout=timeout)
    assert ws.subprotocol == protocol
    b64 = "base64" in protocol
    for channel, data in send:
        if b64:
            ws.send(str(channel) + base64.b64encode(data).decode())
        else:
            ws.send_binary(bytes([channel]) + data)
    got = {}
    while True:
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if b64:
            channel, payload = int(chr(data[0])), base64.b64decode(data[1:])
        else:
            channel, payload = data[0], data[1:]
        got.setdefault(channel, b"")
        got[channel] += payload
    ws.close()
    return got


def test_exec_attach_and_port_forward_over_websocket(daemon, registry):
    """The WebSocket path (v5, v4 and base64 subprotocols) through Python websocket-client."""
    import json
    import socket
    stub, d, cgroup = daemon
    sock = os.path.join(d, "crust.sock")
    channel = grpc.insecure_channel("unix://" + sock, options=[("grpc.default_authority", sock)])
    images = rpc.ImageServiceStub(channel)
    push_image(registry, "py/busybox", "ws")
    ref = f"{registry}/py/busybox:ws"
    images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
    pod = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=host_pod("py-ws", cgroup))).pod_sandbox_id
    bb = "/bin/busybox"
    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="ws"), image=pb.ImageSpec(image=ref),
                             command=[bb, "sleep", "1000"])
    ctr = stub.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=cfg)).container_id
    stub.StartContainer(pb.StartContainerRequest(container_id=ctr))

    def exec_url(cmd, stdin=False):
        return stub.Exec(pb.ExecRequest(container_id=ctr, cmd=cmd, stdin=stdin, stdout=True, stderr=True)).url

    got = ws_session(exec_url([bb, "sh", "-c", "echo out; echo err >&2; exit 3"]), "v5.channel.k8s.io")
    assert got[1] == b"out\n" and got[2] == b"err\n", got
    status = json.loads(got[3])
    assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "3"
    # stdin to EOF: v5 closes a channel with [255, channel].
    got = ws_session(exec_url([bb, "cat"], stdin=True), "v5.channel.k8s.io",
                     send=[(0, b"over websocket\n"), (255, b"\x00")])
    assert got[1] == b"over websocket\n" and json.loads(got[3])["status"] == "Success", got
    got = ws_session(exec_url([bb, "sh", "-c", "echo b64"]), "v4.base64.channel.k8s.io")
    assert got[1] == b"b64\n" and json.loads(got[3])["status"] == "Success", got

    # Port-forward: a server on a free host loopback port of this host-network pod.
    port = free_port()
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        data = conn.recv(100)
        conn.sendall(b"pong:" + data)
        conn.close()
    import threading
    t = threading.Thread(target=answer)
    t.start()
    url = stub.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod, port=[port])).url + f"?port={port}"
    got = ws_session(url, "v4.channel.k8s.io", send=[(0, b"ping")])
    t.join(5)
    server.close()
    assert got[0][:2] == port.to_bytes(2, "little"), got
    assert got[0][2:] == b"pong:ping", got
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
    channel.close()
