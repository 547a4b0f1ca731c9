"""A real gRPC implementation (grpcio, gRPC C-core, Debian's python3-grpcio) on either side of
the kubelet PodResources v1 protocol, to check the Rust client (hyper + prost) and the test
stand-in against something that is not ours. Messages are encoded by hand (no protoc).

    grpcio_podresources.py server SOCKET MODE   # MODE: get | list | error | hang; prints READY
    grpcio_podresources.py client SOCKET        # calls List and Get, prints what came back

Used by tests/tests/podresources_interop.rs.
"""
import sys
import time
from concurrent import futures

import grpc

SERVICE = "v1.PodResourcesLister"


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, body):
    return varint(field << 3 | 2) + varint(len(body)) + body


def pod(namespace, name, resource, ids):
    topology = ld(1, varint(1 << 3) + varint(0))  # TopologyInfo{nodes: [NUMANode{ID: 0}]}
    devices = ld(1, resource.encode()) + b"".join(ld(2, i.encode()) for i in ids) + ld(3, topology)
    container = ld(1, b"app") + ld(2, devices) + ld(3, varint(4) + varint(5))  # cpu_ids packed
    return ld(1, name.encode()) + ld(2, namespace.encode()) + ld(3, container)


PODS = [
    pod("default", "web", "intel.com/sriov", ["0000:18:02.5", "0000:18:02.6"]),
    pod("other", "x", "intel.com/sriov", ["0000:86:00.1"]),
]


def server(socket, mode):
    def list_(request, context):
        if mode == "hang":
            time.sleep(30)
        if mode == "error":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, 'denied: 100% "no"')
        return b"".join(ld(1, p) for p in PODS)

    def get(request, context):
        if request != ld(1, b"web") + ld(2, b"default"):
            context.abort(grpc.StatusCode.UNKNOWN, "pod not found")
        return ld(1, PODS[0])

    handlers = {"List": grpc.unary_unary_rpc_method_handler(list_)}
    if mode == "get":
        handlers["Get"] = grpc.unary_unary_rpc_method_handler(get)
    s = grpc.server(futures.ThreadPoolExecutor(4))
    s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    s.add_insecure_port("unix:" + socket)
    s.start()
    print("READY", flush=True)
    s.wait_for_termination()


def client(socket):
    channel = grpc.insecure_channel("unix:" + socket)
    call = lambda m: channel.unary_unary("/%s/%s" % (SERVICE, m))
    print("LIST", call("List")(b"", timeout=5).hex())
    print("GET", call("Get")(ld(1, b"web") + ld(2, b"default"), timeout=5).hex())
    try:
        call("Get")(ld(1, b"ghost") + ld(2, b"default"), timeout=5)
        print("ERR none")
    except grpc.RpcError as e:
        print("ERR", e.code().name, e.details())


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], sys.argv[3])
    else:
        client(sys.argv[2])
