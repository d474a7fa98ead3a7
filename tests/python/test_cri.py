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
    yield stub, d, cgroup
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
        stub.ExecSync(pb.ExecSyncRequest(container_id="c"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert stub.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
