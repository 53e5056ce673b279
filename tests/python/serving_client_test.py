#!/usr/bin/env python3
"""A Python client of the serving API, as an application developer would
write one: stubs generated at test time from the project's .proto files with
grpc_tools, Debian's python3-grpcio, a bitnet-serve process with two pipeline
stages. Checks the health service and a streaming Generate.

Exit status: 0 pass, 1 fail, 77 skipped (no model file or no grpc modules).
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def generate_stubs(proto_dir, out_dir):
    from grpc_tools import protoc
    # The health proto is compiled from its own folder so that its module is
    # a top-level `health_pb2` (a `grpc.health` package would clash with grpcio).
    jobs = [(proto_dir, f) for f in ["bitnet/v1/inference.proto", "bitnet/v1/cluster.proto",
                                     "bitnet/v1/stage.proto"]]
    jobs.append((os.path.join(proto_dir, "grpc/health/v1"), "health.proto"))
    for include, f in jobs:
        rc = protoc.main(["grpc_tools.protoc", f"-I{include}", f"--python_out={out_dir}",
                          f"--grpc_python_out={out_dir}", f])
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {f}")
    # Generated modules import each other as packages (bitnet.v1.*).
    for pkg in ["bitnet", "bitnet/v1"]:
        os.makedirs(os.path.join(out_dir, pkg), exist_ok=True)
        open(os.path.join(out_dir, pkg, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)


class ServingClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        generate_stubs(ARGS.proto_dir, cls.tmp.name)
        port_file = os.path.join(cls.tmp.name, "port")
        cls.log = open(os.path.join(cls.tmp.name, "serve.log"), "w+")
        cls.server = subprocess.Popen(
            [os.path.join(ARGS.bin_dir, "bitnet-serve"), f"--model={ARGS.model}",
             "--workers=2", "--threads=1", "--host=127.0.0.1", "--port=0",
             f"--port_file={port_file}", "--verbose"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not os.path.exists(port_file):
            if cls.server.poll() is not None or time.time() > deadline:
                cls.log.seek(0)
                raise RuntimeError("bitnet-serve did not start:\n" + cls.log.read())
            time.sleep(0.05)
        with open(port_file) as f:
            cls.address = f"127.0.0.1:{int(f.read())}"

        import grpc
        cls.channel = grpc.insecure_channel(cls.address)
        # Calls are fail-fast: wait for the connection, as a client should
        # (gRPC 1.51 occasionally fails a first localhost connect; it retries).
        grpc.channel_ready_future(cls.channel).result(timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.send_signal(signal.SIGTERM)
        try:
            cls.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.server.kill()
        cls.log.close()
        cls.tmp.cleanup()

    def test_health_reports_serving(self):
        import health_pb2
        import health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(self.channel)
        for service in ["", "bitnet.v1.Inference"]:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING, service)

    def test_generate_streams_tokens_and_text(self):
        from bitnet.v1 import inference_pb2 as pb
        from bitnet.v1 import inference_pb2_grpc as rpc
        stub = rpc.InferenceStub(self.channel)
        req = pb.GenerateRequest(prompt="The quick brown fox", max_tokens=16,
                                 sampling=pb.SamplingParams(temperature=0),
                                 request_tag="python")
        chunks = list(stub.Generate(req, timeout=60))
        self.assertGreater(len(chunks), 0)
        tokens = [t for c in chunks for t in c.token_ids]
        last = chunks[-1]
        self.assertIn(last.finish_reason, (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP))
        self.assertEqual(last.usage.completion_tokens, len(tokens))
        self.assertTrue(all(c.request_tag == "python" for c in chunks))
        self.assertGreater(last.timing.total_ms, 0)
        # Greedy is deterministic: the same request gives the same tokens.
        again = [t for c in stub.Generate(req, timeout=60) for t in c.token_ids]
        self.assertEqual(again, tokens)
        # The tokenizer service agrees on the prompt length.
        tok = stub.Tokenize(pb.TokenizeRequest(text="The quick brown fox", add_bos=True,
                                               parse_special=True), timeout=5)
        self.assertEqual(len(tok.token_ids), last.usage.prompt_tokens)

    def test_bad_request_is_invalid_argument_naming_the_field(self):
        import grpc
        from bitnet.v1 import inference_pb2 as pb
        from bitnet.v1 import inference_pb2_grpc as rpc
        stub = rpc.InferenceStub(self.channel)
        req = pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(top_k=-3))
        with self.assertRaises(grpc.RpcError) as ctx:
            list(stub.Generate(req, timeout=10))
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("sampling.top_k", ctx.exception.details())


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--proto-dir", required=True)
    parser.add_argument("--model", required=True)
    ARGS, rest = parser.parse_known_args()
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc  # noqa: F401
    except ImportError as e:
        skip(f"python3-grpcio / python3-grpc-tools not installed ({e})")
    if not os.path.exists(ARGS.model):
        skip(f"model not found: {ARGS.model}")
    result = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
