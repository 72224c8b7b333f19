"""The HTTP API of `elvmass serve` (in process): answers on genuine vendor files, one 4xx with a one-line
JSON error for every kind of bad input, per-request folders removed, batching, and a bad bundle refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import threading
import tracemalloc

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from elvmass.cli import app as cli_app
from elvmass.serve import ServiceConfig, create_app


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-requests")


@pytest.fixture(scope="module")
def service_app(trained_bundle, tmp_root):
    return create_app(ServiceConfig(trained_bundle, tmp_root=tmp_root, max_wait_ms=200))


@pytest.fixture(scope="module")
def client(service_app):
    with TestClient(service_app) as c:
        yield c


@pytest.fixture()
def muse2(shared_data):
    return shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml"


def _post(client, path, name=None, data=None, url="/v1/predict"):
    content = path.read_bytes() if hasattr(path, "read_bytes") else path
    return client.post(url, files={"file": (name or getattr(path, "name", "upload"), content)}, data=data or {})


def _error(res, status):
    assert res.status_code == status, res.text
    body = res.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and body["error"]
    return body["error"]


def test_predicts_a_genuine_muse_export_like_the_library(client, trained_bundle, muse2, tmp_root):
    from elvmass.bundle import load_bundle
    from elvmass.predict import predict_files

    res = _post(client, muse2, data={"height_cm": "178", "weight_kg": "84"})
    assert res.status_code == 200, res.text
    body = res.json()
    (pred,), _ = predict_files(load_bundle(trained_bundle), [muse2], height_cm=178, weight_kg=84)
    assert body["lvm_g"] == pred.to_dict()["lvm_g"] and body["lvmi_g_m2"] == pred.to_dict()["lvmi_g_m2"]
    assert body["model"] == "elvmassnet_male"  # <Gender>MALE</Gender> in the file
    assert body["age_years"] == 60.0  # <PatientAge>60</PatientAge>
    dev = body["measurements"]["device"]
    assert (dev["qrs_ms"], dev["p_axis_deg"], dev["r_axis_deg"], dev["t_axis_deg"]) == (80.0, 49.0, 55.0, 48.0)
    assert body["lvh_cutoff_g_m2"] == 72.0 and body["lvh"] == (body["lvmi_g_m2"] > 72.0)
    assert list(tmp_root.iterdir()) == []


def test_detail_adds_the_waveform_and_the_beat(client, muse2):
    body = client.post("/v1/predict?detail=true", files={"file": ("m.xml", muse2.read_bytes())}).json()
    assert len(body["ecg"]["uv"]) == 12 and len(body["ecg"]["uv"][0]) == 5000  # 10 s at 500 Hz
    assert len(body["beat"]["mv"]) == 12
    assert set(body["measurements"]) == {"device", "measured"}
    assert 60 <= body["measurements"]["measured"]["qrs_ms"] <= 110  # the device says 80 ms


@pytest.mark.parametrize("name,content,status,needle", [
    ("notes.txt", b"hello, this is not an ECG\n", 415, "unsupported or unrecognised file format"),
    ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(200), 415, "unsupported"),
    ("other.xml", b"<?xml version='1.0'?><invoice><total>3</total></invoice>", 415, "unsupported XML"),
    ("empty.xml", b"", 422, "empty"),
])
def test_non_ecg_uploads(client, tmp_root, name, content, status, needle):
    msg = _error(_post(client, content, name=name), status)
    assert needle in msg and name in msg
    assert list(tmp_root.iterdir()) == []


def test_corrupt_and_truncated_muse(client, muse2, tmp_root):
    raw = muse2.read_bytes()
    msg = _error(_post(client, raw[: len(raw) // 2], name="half.xml"), 422)
    assert msg.startswith("half.xml:") and "corrupt or truncated" in msg
    bad = raw.replace(b"<WaveFormData>", b"<WaveFormData>!!", 1)
    assert "half.xml" not in _error(_post(client, bad, name="b64.xml"), 422)
    assert list(tmp_root.iterdir()) == []


@pytest.mark.parametrize("data,needle", [
    ({"age_years": "300"}, "implausible age_years '300'"),
    ({"height_cm": "1.75"}, "implausible height_cm"),
    ({"weight_kg": "176 lb"}, "weight_kg must be a number"),
    ({"weight_kg": "nan"}, "implausible weight_kg"),
    ({"sex": "X"}, "sex must be M or F"),
])
def test_implausible_demographics(client, muse2, data, needle):
    assert needle in _error(_post(client, muse2, data=data), 422)


def test_requests_that_are_not_uploads(client):
    assert "multipart/form-data" in _error(client.post("/v1/predict", json={"file": "x"}), 415)
    assert "field 'file'" in _error(client.post("/v1/predict", files={"other": ("a.xml", b"<a/>")}), 422)
    res = client.post("/v1/predict", content=b"--xx\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=xx"})
    assert res.status_code in (400, 422) and "\n" not in res.json()["error"]
    _error(client.get("/v1/nothing"), 404)


def test_over_the_size_limit(trained_bundle, muse2, tmp_path):
    small = create_app(ServiceConfig(trained_bundle, max_upload_bytes=100_000, tmp_root=tmp_path))
    with TestClient(small) as c:
        msg = _error(_post(c, muse2), 413)  # the file is 143 kB
    assert "over the limit of 100000 bytes" in msg
    assert list(tmp_path.iterdir()) == []


async def _asgi_upload(app, total: int, *, with_length: bool):
    """Send a multipart upload of ``total`` bytes in 64 KiB messages; count what the app pulled."""
    boundary = b"elvmassboundary"
    head = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.xml"\r\n'
            b"Content-Type: application/xml\r\n\r\n")
    chunk = b"<" * 65536
    pulled = {"bytes": 0, "messages": 0}
    n_chunks = total // len(chunk)
    state = {"i": -1}

    async def receive():
        state["i"] += 1
        i = state["i"]
        if i == 0:
            body = head
        elif i <= n_chunks:
            body = chunk
        else:
            body = b"\r\n--" + boundary + b"--\r\n"
        pulled["bytes"] += len(body)
        pulled["messages"] += 1
        return {"type": "http.request", "body": body, "more_body": i <= n_chunks}

    sent = []

    async def send(msg):
        sent.append(msg)

    headers = [(b"content-type", b"multipart/form-data; boundary=" + boundary), (b"host", b"test")]
    if with_length:
        headers.append((b"content-length", str(len(head) + n_chunks * len(chunk) + len(boundary) + 8).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def test_a_25_mb_upload_is_refused_while_streaming(service_app, tmp_root):
    """Default limit 20 MB: a 25 MB body is refused after ~20 MB were streamed to disk, never held whole in
    memory; with an honest Content-Length it is refused before a byte of the body is read."""
    total = 25 * 1024 * 1024
    tracemalloc.start()
    try:
        status, body, pulled = asyncio.run(_asgi_upload(service_app, total, with_length=False))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413 and "over the limit of 20971520 bytes" in body["error"]
    assert 20 * 1024 * 1024 < pulled["bytes"] < 20 * 1024 * 1024 + 3 * 65536
    assert peak < 8 * 1024 * 1024, f"peak Python memory {peak / 1e6:.1f} MB while refusing a 25 MB upload"
    status, body, pulled = asyncio.run(_asgi_upload(service_app, total, with_length=True))
    assert status == 413 and pulled["bytes"] == 0
    assert list(tmp_root.iterdir()) == []


def _sex_specific_only(bundle_dir, dst):
    """A copy of the bundle without the model for both sexes (hashes rewritten: a valid bundle)."""
    shutil.copytree(bundle_dir, dst)
    cfg = json.loads((dst / "bundle.json").read_text())
    entry = cfg["models"].pop("elvmassnet")
    (dst / entry["weights"]).unlink()
    (dst / "bundle.json").write_text(json.dumps(cfg))
    hashes = json.loads((dst / "hashes.json").read_text())
    hashes["files"] = {n: hashlib.sha256((dst / n).read_bytes()).hexdigest() for n in hashes["files"] if (dst / n).exists()}
    (dst / "hashes.json").write_text(json.dumps(hashes))
    return dst


def test_missing_sex_for_a_sex_specific_model(trained_bundle, muse2, tmp_path):
    no_sex = muse2.read_bytes().replace(b"<Gender>MALE</Gender>", b"", 1)
    assert no_sex != muse2.read_bytes()
    sexed = create_app(ServiceConfig(_sex_specific_only(trained_bundle, tmp_path / "b"), tmp_root=tmp_path / "t"))
    with TestClient(sexed) as c:
        assert "sex is needed" in _error(_post(c, no_sex, name="nosex.xml"), 422)
        ok = _post(c, no_sex, name="nosex.xml", data={"sex": "female"})
        assert ok.status_code == 200 and ok.json()["model"] == "elvmassnet_female"
    with TestClient(create_app(ServiceConfig(trained_bundle))) as c:  # with the both-sexes model: predicted, flagged
        body = _post(c, no_sex, name="nosex.xml").json()
        assert body["model"] == "elvmassnet" and "sex_unknown" in body["flags"]


def test_batch_endpoint_and_batched_model_calls(client, service_app, shared_data, muse2):
    files = [("file", (p.name, p.read_bytes())) for p in sorted((shared_data / "vendor" / "ge-muse-xml").glob("*.xml"))]
    files.append(("file", ("bad.txt", b"not an ECG")))
    res = client.post("/v1/predict/batch", files=files, data={"height_cm": "170"})
    assert res.status_code == 200
    body = res.json()
    assert body["n_files"] == 3 and body["n_errors"] == 1
    assert body["results"][2]["status"] == 415 and "bad.txt" in body["results"][2]["error"]
    single = _post(client, muse2, data={"height_cm": "170"}).json()
    assert body["results"][1]["lvm_g"] == single["lvm_g"]

    # concurrent requests share model calls (the service waits up to 200 ms here for a batch to fill)
    batches = service_app.state.service.batcher.batches
    before = len(batches)
    out = []
    threads = [threading.Thread(target=lambda: out.append(_post(client, muse2).json()["lvm_g"])) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 1 and len(out) == 6
    assert max(batches[before:]) > 1, batches[before:]


def test_health_model_and_openapi(client, trained_bundle):
    h = client.get("/v1/health").json()
    assert h["status"] == "ok" and "elvmassnet_male" in h["models"]
    m = client.get("/v1/model").json()
    expected = json.loads((trained_bundle / "hashes.json").read_text())["files"]
    assert m["hashes_sha256"] == expected and m["lvh_cutoffs_g_m2"] == {"M": 72.0, "F": 55.0}
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(body["properties"]) == {"file", "age_years", "sex", "height_cm", "weight_kg"}
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for asset in ("/", "/static/app.js", "/static/style.css"):  # nothing loaded from elsewhere
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text, asset


def test_a_bad_bundle_stops_the_service_with_one_line(trained_bundle, tmp_path):
    res = CliRunner().invoke(cli_app, ["serve", "--model", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "cannot start the service" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    bad = tmp_path / "tampered"
    shutil.copytree(trained_bundle, bad)
    w = bad / "elvmassnet_male.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    res = CliRunner().invoke(cli_app, ["serve", "--model", str(bad)])
    assert res.exit_code == 1 and "elvmassnet_male.safetensors" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
