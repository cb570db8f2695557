#!/usr/bin/env python3
"""The load test's own clients (bench/load.sh runs them; stdlib only, plus the b3sum command).

  clients.py seed UPLOADS POOL TEXTURE SCALE
                                           a seeded library, and images for uploads in POOL
  clients.py reads BASE FILES OUT          the weighted list of read URLs that wrk rotates over
  clients.py write BASE FILES ACCESS POOL SECONDS LOG
                                           concurrent writers; every acknowledged write goes
                                           to LOG (JSON lines), with the counters at the end
  clients.py check BASE FILES UPLOADS LOG  every acknowledged write is on disk, in the API and
                                           in search; prints the lost ones, exit 1 when any

Writers (threads, one keep-alive connection each):
  uploaders  POST /api/files of random bytes, sizes log-uniform 1 KiB - 10 MiB (text up to
             128 KiB, an MP4 box then random bytes above), and of images made unique by a
             comment, whose thumbnails are then asked for (real work, since each is new
             content); some under one name all uploaders use (rename=true), some over their
             own earlier uploads (overwrite=true, racing the editors of those files); every
             upload is read back by hash URL at once
  editors    PATCH/POST /api/files/meta with values that carry a unique word, on seeded files
             and on uploads handed to them; each file has one editor, so the last acknowledged
             value is the one that must remain
  mover      PUT /api/files (move), PUT /api/files/copy, DELETE /api/files of uploads handed to it
"""

import http.client
import json
import math
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import zlib

WORDS = (
    "alpine harbor meadow granite lantern orchard glacier canyon willow falcon "
    "harvest lagoon summit ember cobalt saffron tundra prairie juniper quartz "
    "monsoon citadel beacon thistle marble estuary aurora basalt cedar dune "
    "fjord heather iris jasmine kestrel lichen mistral nectar oasis pebble"
).split()
# Seeded names people really use: spaces, accents, capitals (served percent-encoded).
ODD_NAMES = ["Été à Nice", "Photo Library", "naïve café", "Q3 report (final)", "día de campo"]

KIB = 1024
MIB = 1024 * KIB
MIN_UPLOAD = 1 * KIB
MAX_UPLOAD = 10 * MIB
MAX_TEXT = 128 * KIB
MP4_HEAD = b"\0\0\0\x18ftypisom\0\0\2\0isommp41"
TIMEOUT = 120


def text_bytes(rng, size):
    """ASCII text of exactly SIZE bytes, in lines of words from WORDS."""
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choices(WORDS, k=12)) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def b3sum(data):
    done = subprocess.run(["b3sum", "--no-names"], input=data, capture_output=True, check=True)
    return done.stdout.decode().split()[0]


def b3sum_files(paths):
    """BLAKE3 of each file (None when it is missing), with one b3sum per 200 files."""
    out = {}
    for i in range(0, len(paths), 200):
        chunk = paths[i : i + 200]
        present = [p for p in chunk if os.path.isfile(p)]
        if present:
            done = subprocess.run(
                ["b3sum", "--no-names", "--"] + present, capture_output=True, check=True
            )
            for p, h in zip(present, done.stdout.decode().split()):
                out[p] = h
    return {p: out.get(p) for p in paths}


# --- seed ------------------------------------------------------------------------------------


def seed(uploads, pool, texture, scale):
    """A small site's library in UPLOADS: text, video and images (crops of TEXTURE, a large
    vips image, so that every image is different content), and the images uploads draw from
    in POOL. Prints how many library files it made."""
    rng = random.Random(7)
    made = 0
    for i in range(int(100 * scale)):
        folder = os.path.join(uploads, "docs", rng.choice(["guides", "notes", "press"]))
        os.makedirs(folder, exist_ok=True)
        stem = (
            ODD_NAMES[i]
            if i < len(ODD_NAMES)
            else "%s-%s-%d" % (rng.choice(WORDS), rng.choice(WORDS), i)
        )
        ext = rng.choice(["txt", "md"])
        size = int(math.exp(rng.uniform(math.log(200), math.log(64 * KIB))))
        with open(os.path.join(folder, "%s.%s" % (stem, ext)), "wb") as f:
            f.write(text_bytes(rng, size))
        made += 1
    os.makedirs(os.path.join(uploads, "video"), exist_ok=True)
    for i in range(int(40 * scale)):
        size = int(math.exp(rng.uniform(math.log(4 * KIB), math.log(2 * MIB))))
        name = "%s-clip-%d.mp4" % (rng.choice(WORDS), i)
        with open(os.path.join(uploads, "video", name), "wb") as f:
            f.write(MP4_HEAD + rng.randbytes(size - len(MP4_HEAD)))
        made += 1
    # (count, width, height, format): phone snaps, web images, camera photos, graphics.
    kinds = [
        (60, 640, 480, "jpg"),
        (40, 1600, 1200, "jpg"),
        (15, 3000, 2000, "jpg"),
        (20, 256, 256, "png"),
        (20, 800, 600, "png"),
    ]
    jobs = []
    for count, w, h, ext in kinds:
        for i in range(max(1, int(count * scale))):
            if ext == "jpg":
                folder = os.path.join(
                    uploads, "photos", rng.choice(["travel", "team", "events", "Été 2024"])
                )
            else:
                folder = os.path.join(uploads, "graphics")
            os.makedirs(folder, exist_ok=True)
            name = "%s-%s-%dx%d-%d.%s" % (rng.choice(WORDS), rng.choice(WORDS), w, h, i, ext)
            jobs.append((w, h, os.path.join(folder, name)))
    os.makedirs(pool, exist_ok=True)
    for i in range(30):
        jobs.append((1200, 900, os.path.join(pool, "pool-%d.jpg" % i)))
    for i in range(15):
        jobs.append((640, 480, os.path.join(pool, "pool-%d.png" % i)))

    def header(field):
        done = subprocess.run(
            ["vipsheader", "-f", field, texture], capture_output=True, check=True, text=True
        )
        return int(done.stdout)

    tw, th = header("width"), header("height")
    # Distinct crop offsets make distinct images; two vips processes at a time.
    seen = set()
    cmds = []
    for w, h, out in jobs:
        while True:
            left, top = rng.randrange(0, tw - w + 1), rng.randrange(0, th - h + 1)
            if (left, top, w, h) not in seen:
                seen.add((left, top, w, h))
                break
        target = out + ("[Q=85]" if out.endswith(".jpg") else "[compression=6]")
        cmds.append(["vips", "crop", texture, target, str(left), str(top), str(w), str(h)])
    running = []
    for cmd in cmds:
        if len(running) >= 2:
            running.pop(0).wait()
        running.append(subprocess.Popen(cmd))
    for p in running:
        p.wait()
    for w, h, out in jobs:
        if not os.path.isfile(out) or os.path.getsize(out) == 0:
            raise SystemExit("vips made no %s" % out)
    print(made + sum(1 for _, _, out in jobs if not out.startswith(pool)))


# --- reads -----------------------------------------------------------------------------------

READ_WEIGHTS = {"static": 30, "hash": 10, "object": 15, "listing": 5, "search": 20, "thumb": 20}
THUMB_SPECS = ["100x100", "300x0"]


def api_get(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError("GET %s: %d %s" % (path, resp.status, body[:300]))
    return json.loads(body)


def reads(base, files_token, out):
    """KIND<TAB>URL lines, drawn by READ_WEIGHTS over every file of the seeded library."""
    host = urllib.parse.urlsplit(base).netloc
    conn = http.client.HTTPConnection(host, timeout=TIMEOUT)
    tok = urllib.parse.quote(files_token)
    files = api_get(conn, "/api/files/search?q=*&limit=1000&token=%s" % tok)["data"]
    if not files:
        raise SystemExit("the library is empty")
    images = [f for f in files if f["extension"] in ("jpg", "png")]
    folders = sorted({f["dirname"] for f in files} | {"", "docs", "photos"})
    rng = random.Random(11)
    q = urllib.parse.quote

    def one(kind):
        f = rng.choice(files)
        if kind == "static":
            return "/project/uploads/" + q(f["path"])
        if kind == "hash":
            return "/media/%s.%s" % (f["hash"], f["extension"])
        if kind == "object":
            return "/api/files?path=%s&token=%s" % (q(f["path"], safe=""), tok)
        if kind == "listing":
            route = rng.choice(["/api/files", "/api/folders"])
            return "%s?path=%s&token=%s" % (route, q(rng.choice(folders), safe=""), tok)
        if kind == "search":
            params = {
                "q": rng.choice(WORDS + ["*", "%s %s" % (rng.choice(WORDS), rng.choice(WORDS))])
            }
            extra = rng.random()
            if extra < 0.25:
                params["folder"] = rng.choice(folders[1:])
            elif extra < 0.5:
                params.update(sort="filesize:desc", offset=str(rng.randrange(0, 300)))
            elif extra < 0.6:
                params["type"] = "image/*"
            params["token"] = files_token
            return "/api/files/search?" + urllib.parse.urlencode(params)
        img = rng.choice(images)
        spec = rng.choice(THUMB_SPECS)
        if rng.random() < 0.25:
            return "/media/%s.%s?thumb=%s" % (img["hash"], img["extension"], spec)
        return "/project/uploads/%s?thumb=%s" % (q(img["path"]), spec)

    kinds = list(READ_WEIGHTS)
    weights = [READ_WEIGHTS[k] for k in kinds]
    with open(out, "w") as f:
        for kind in rng.choices(kinds, weights, k=20000):
            f.write("%s\t%s\n" % (kind, one(kind)))
    print("%d files, %d images, %d folders" % (len(files), len(images), len(folders)))


# --- write -----------------------------------------------------------------------------------


class Client:
    """One keep-alive connection; every answer is counted by operation and status class."""

    def __init__(self, base, files_token, access_token, stats):
        self.host = urllib.parse.urlsplit(base).netloc
        self.auth = {"Authorization": "Bearer " + files_token, "X-Access-Token": access_token}
        self.stats = stats
        self.conn = None
        self.used = 0.0

    def call(self, op, method, path, body=None, headers=None):
        """(status, body bytes, response headers); None after a transport error (counted)."""
        h = dict(self.auth)
        h.update(headers or {})
        # The server closes keep-alive connections idle for 5 s; a write is never sent on one
        # that may be closing, since it could not be retried safely.
        if self.conn is not None and time.time() - self.used > 2:
            self.conn.close()
            self.conn = None
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, timeout=TIMEOUT)
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                # A keep-alive connection the server closed between requests: one new try,
                # but only for requests that cannot have been acted on twice.
                self.conn.close()
                self.conn = None
                if attempt == 1 and method in ("GET", "HEAD"):
                    continue
                self.stats.add(op, "error", "%s %s: %r" % (method, path[:80], e))
                return None
            except OSError as e:
                self.conn.close()
                self.conn = None
                self.stats.add(op, "error", "%s %s: %r" % (method, path[:80], e))
                if isinstance(e, ConnectionRefusedError):
                    self.stats.stop.set()  # the server is gone: every writer stops
                return None
            self.used = time.time()
            cls = "%dxx" % (resp.status // 100)
            note = (
                None
                if resp.status < 300
                else "%s %s: %d %s" % (method, path[:80], resp.status, data[:200])
            )
            self.stats.add(op, cls, note)
            return resp.status, data, resp
        return None

    def json_call(self, op, method, path, fields):
        return self.call(
            op, method, path, json.dumps(fields).encode(), {"Content-Type": "application/json"}
        )


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.bytes = 0
        self.notes = []
        self.stop = threading.Event()

    def running(self, deadline):
        return time.time() < deadline and not self.stop.is_set()

    def add(self, op, cls, note=None):
        with self.lock:
            self.counts.setdefault(op, {}).setdefault(cls, 0)
            self.counts[op][cls] += 1
            if note and len(self.notes) < 50:
                self.notes.append(note)


class Log:
    """Acknowledged writes, one JSON object a line, flushed as they happen."""

    def __init__(self, path):
        self.f = open(path, "w")
        self.lock = threading.Lock()

    def write(self, **rec):
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()


def multipart(fields, name, payload):
    """A multipart body: the text FIELDS first (as the server wants them before the file),
    then the file."""
    boundary = "load" + uuid.uuid4().hex
    head = "".join(
        '--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary, k, v)
        for k, v in fields.items()
    )
    head += (
        '--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name)
    )
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    return head.encode() + payload + tail, "multipart/form-data; boundary=" + boundary


def unique_image(rng, data, ext):
    """The pool image with random bytes in a comment (JPEG COM segment, PNG tEXt chunk), so
    that every upload is new content and its thumbnails must really be made."""
    note = b"load " + rng.randbytes(16).hex().encode()
    if ext == "jpg":
        return data[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + data[2:]
    chunk = b"tEXt" + b"Comment\0" + note
    packed = (len(chunk) - 4).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    return data[:33] + packed + data[33:]  # after the signature (8) and IHDR (25)


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def content(rng, pool, ext):
    """New bytes for a file of extension EXT: an image from POOL made unique, text, or an MP4
    box followed by random bytes."""
    if ext in ("jpg", "png"):
        src = rng.choice([p for p in pool if p.endswith("." + ext)])
        with open(src, "rb") as f:
            return unique_image(rng, f.read(), ext)
    if ext == "txt":
        return text_bytes(rng, log_uniform(rng, MIN_UPLOAD, MAX_TEXT))
    return MP4_HEAD + os.urandom(log_uniform(rng, MAX_TEXT, MAX_UPLOAD) - len(MP4_HEAD))


def random_content(rng, pool):
    """(operation, extension, bytes): an image from POOL one time in five, else random content
    of a log-uniform size, 1 KiB - 10 MiB (text up to 128 KiB, MP4 above)."""
    if rng.random() < 0.2 and pool:
        ext = rng.choice(pool).rsplit(".", 1)[1]
        return "upload-image", ext, content(rng, pool, ext)
    size = log_uniform(rng, MIN_UPLOAD, MAX_UPLOAD)
    if size <= MAX_TEXT:
        return "upload", "txt", text_bytes(rng, size)
    return "upload", "mp4", MP4_HEAD + os.urandom(size - len(MP4_HEAD))


def uploader(n, ctx):
    """Uploads under names of its own; one time in ten a name every uploader uses, with
    `rename=true` (each must get a path of its own); and one time in twelve new content over
    one of its earlier uploads that no mover has, with `overwrite=true`."""
    rng = random.Random(1000 + n)
    c = Client(ctx["base"], ctx["files"], ctx["access"], ctx["stats"])
    kept = []  # (path, extension) of uploads no mover will touch
    i = 0
    while ctx["stats"].running(ctx["deadline"]):
        i += 1
        op, ext, payload = random_content(rng, ctx["pool"])
        x = rng.random()
        if x < 0.1:
            fields = {"folder": "incoming/shared", "rename": "true"}
            name = "%s.%s" % (rng.choice(WORDS[:3]), ext)
        elif x < 0.18 and kept:
            path, ext = kept[rng.randrange(len(kept))]
            op, payload = "overwrite", content(rng, ctx["pool"], ext)
            folder, name = path.rsplit("/", 1)
            fields = {"folder": folder, "overwrite": "true"}
        else:
            fields = {"folder": "incoming/u%d/%s" % (n, rng.choice(WORDS))}
            name = "%s-%s-u%d-%d.%s" % (rng.choice(WORDS), rng.choice(WORDS), n, i, ext)
        want = b3sum(payload)
        body, ctype = multipart(fields, name, payload)
        r = c.call(op, "POST", "/api/files", body, {"Content-Type": ctype})
        if r is None or r[0] != 200:
            continue
        obj = json.loads(r[1])["data"]
        ctx["log"].write(
            op="overwrite" if op == "overwrite" else "upload",
            path=obj["path"],
            hash=want,
            size=len(payload),
            answered_hash=obj["hash"],
        )
        with ctx["stats"].lock:
            ctx["stats"].bytes += len(payload)
        # Read it back at once, by hash: the content must be there as soon as it is acked.
        r = c.call("read-back", "GET", "/media/%s.%s" % (want, ext))
        if r and r[0] == 200 and b3sum(r[1]) != want:
            ctx["stats"].add("read-back", "mismatch", "%s: served other bytes" % obj["path"])
        if ext in ("jpg", "png"):
            for spec in THUMB_SPECS:
                url = "/project/uploads/%s?thumb=%s" % (urllib.parse.quote(obj["path"]), spec)
                r = c.call("thumb-new", "GET", url)
                etag = r[2].getheader("ETag", "") if r and r[0] == 200 else None
                if etag is not None and etag != '"%s-%s"' % (want, spec):
                    ctx["stats"].add("thumb-new", "mismatch", "%s: ETag %s" % (obj["path"], etag))
        if op == "overwrite":
            continue
        # Hand the file on: most to an editor, some to the mover, the rest left alone.
        x = rng.random()
        if x < 0.6:
            ctx["edit_queues"][i % len(ctx["edit_queues"])].put(obj["path"])
        elif x < 0.85:
            ctx["move_queue"].put(obj)
            continue
        kept.append((obj["path"], ext))


def editor(n, ctx):
    rng = random.Random(2000 + n)
    c = Client(ctx["base"], ctx["files"], ctx["access"], ctx["stats"])
    owned = list(ctx["seeded"][n])
    has_credit = set()
    inbox = ctx["edit_queues"][n]
    k = 0
    while ctx["stats"].running(ctx["deadline"]):
        try:
            while True:
                owned.append(inbox.get_nowait())
        except queue.Empty:
            pass
        if not owned:
            time.sleep(0.05)
            continue
        k += 1
        # New uploads are edited more often than the seeded files.
        path = owned[-1 - int(rng.expovariate(0.05)) % len(owned)]
        word = "lw%dx%dz%s" % (n, k, rng.randbytes(3).hex())
        value = "edited %s" % word
        field = rng.choice(["description", "title", "credit"])
        method = "PATCH"
        if field == "credit" and path not in has_credit:
            method = "POST"
        r = c.json_call(
            "meta-" + method.lower(),
            method,
            "/api/files/meta",
            {"path": path, "field": field, "value": value},
        )
        if r is None:
            # No answer: the edit may have been made, so the value may be there instead.
            ctx["log"].write(op="meta-unknown", path=path, field=field, value=value)
            continue
        if r[0] != 200:
            continue
        if field == "credit":
            has_credit.add(path)
        obj = json.loads(r[1])["data"]
        if obj.get(field) != value:
            ctx["stats"].add(
                "meta-" + method.lower(),
                "mismatch",
                "%s: answered %s=%r" % (path, field, obj.get(field)),
            )
        ctx["log"].write(op="meta", path=path, field=field, value=value, word=word, seq=k, editor=n)
        time.sleep(rng.uniform(0, 0.02))


def mover(n, ctx):
    rng = random.Random(3000 + n)
    c = Client(ctx["base"], ctx["files"], ctx["access"], ctx["stats"])
    inbox = ctx["move_queue"]
    i = 0
    while ctx["stats"].running(ctx["deadline"]):
        try:
            obj = inbox.get(timeout=0.2)
        except queue.Empty:
            continue
        i += 1
        src = obj["path"]
        dst = "moved/m%d/%d-%s" % (n, i, obj["filename"])
        r = c.json_call("move", "PUT", "/api/files", {"path": src, "new_path": dst})
        if r is None or r[0] != 200:
            if r is None:
                ctx["log"].write(op="move-unknown", path=src, new_path=dst)
            continue
        ctx["log"].write(op="move", path=src, new_path=dst)
        cp = "copies/m%d/%d-%s" % (n, i, obj["filename"])
        r = c.json_call("copy", "PUT", "/api/files/copy", {"path": dst, "new_path": cp})
        if r is None or r[0] != 200:
            continue
        ctx["log"].write(op="copy", path=dst, new_path=cp)
        if rng.random() < 0.3:
            r = c.json_call("delete", "DELETE", "/api/files", {"path": cp})
            if r is None:
                ctx["log"].write(op="delete-unknown", path=cp)
            elif r[0] == 204:
                ctx["log"].write(op="delete", path=cp)


def write(
    base, files_token, access_token, pool_dir, seconds, log_path, uploaders=3, editors=2, movers=1
):
    host = urllib.parse.urlsplit(base).netloc
    conn = http.client.HTTPConnection(host, timeout=TIMEOUT)
    tok = urllib.parse.quote(files_token)
    files = api_get(conn, "/api/files/search?q=*&limit=1000&sort=filename:asc&token=%s" % tok)[
        "data"
    ]
    # Each seeded text file belongs to one editor; images and videos are left to the readers.
    docs = [f["path"] for f in files if f["path"].startswith("docs/")]
    pool = sorted(os.path.join(pool_dir, p) for p in os.listdir(pool_dir)) if pool_dir else []
    ctx = {
        "base": base,
        "files": files_token,
        "access": access_token,
        "stats": Stats(),
        "log": Log(log_path),
        "pool": pool,
        "deadline": time.time() + seconds,
        "seeded": [docs[i::editors] for i in range(editors)],
        "edit_queues": [queue.Queue() for _ in range(editors)],
        "move_queue": queue.Queue(),
    }
    threads = [threading.Thread(target=uploader, args=(i, ctx)) for i in range(uploaders)]
    threads += [threading.Thread(target=editor, args=(i, ctx)) for i in range(editors)]
    threads += [threading.Thread(target=mover, args=(i, ctx)) for i in range(movers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = ctx["stats"]
    ctx["log"].write(op="stats", counts=s.counts, bytes=s.bytes, notes=s.notes)
    for op in sorted(s.counts):
        print("%-14s %s" % (op, " ".join("%s=%d" % kv for kv in sorted(s.counts[op].items()))))
    for note in s.notes[:20]:
        print("  " + note)


# --- check -----------------------------------------------------------------------------------


def check(base, files_token, uploads, log_path):
    """Replays the log of acknowledged writes into the state they promise, then compares it
    with the disk (bytes and meta YAML), the API and search. Prints one line per loss."""
    files = {}  # path -> expected hash
    gone = set()  # paths that must not exist
    either = []  # (old, new, hash): a move without an answer, the file may be at either
    edits = {}  # (path, field) -> last acknowledged record
    maybe = {}  # (path, field) -> values sent after it without an answer
    stats = None
    lost = []

    def lose(msg):
        lost.append(msg)
        print("LOST " + msg)

    with open(log_path) as f:
        for line in f:
            rec = json.loads(line)
            op = rec["op"]
            if op in ("upload", "overwrite"):
                if op == "upload" and rec["path"] in files:
                    lose("upload %s: a later upload was answered with its path" % rec["path"])
                if op == "overwrite" and rec["path"] not in files:
                    lose("overwrite %s: answered with another path" % rec["path"])
                files[rec["path"]] = rec["hash"]
                if rec["answered_hash"] != rec["hash"]:
                    lose(
                        "upload %s: answered hash %s, sent %s"
                        % (rec["path"], rec["answered_hash"], rec["hash"])
                    )
            elif op == "move":
                files[rec["new_path"]] = files.pop(rec["path"])
                gone.add(rec["path"])
            elif op == "move-unknown":
                either.append((rec["path"], rec["new_path"], files.pop(rec["path"])))
            elif op == "copy":
                files[rec["new_path"]] = files[rec["path"]]
            elif op == "delete":
                files.pop(rec["path"])
                gone.add(rec["path"])
            elif op == "delete-unknown":
                files.pop(rec["path"])
            elif op == "meta":
                edits[(rec["path"], rec["field"])] = rec
                maybe[(rec["path"], rec["field"])] = []
            elif op == "meta-unknown":
                maybe.setdefault((rec["path"], rec["field"]), []).append(rec["value"])
            elif op == "stats":
                stats = rec
    host = urllib.parse.urlsplit(base).netloc
    conn = http.client.HTTPConnection(host, timeout=TIMEOUT)
    tok = urllib.parse.quote(files_token)

    def get(path):
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, (json.loads(body) if body else None)

    # The bytes on disk, then the API's object of each file.
    on_disk = b3sum_files([os.path.join(uploads, p) for p in files])
    for p, want in files.items():
        got = on_disk[os.path.join(uploads, p)]
        if got != want:
            lose("file %s: on disk %s, acked %s" % (p, got or "missing", want))
            continue
        status, body = get("/api/files?path=%s&token=%s" % (urllib.parse.quote(p, safe=""), tok))
        if status != 200 or body["data"].get("hash") != want:
            lose("file %s: the API answered %d %s" % (p, status, str(body)[:200]))
    for p in gone:
        if p in files:
            continue
        if os.path.exists(os.path.join(uploads, p)) or os.path.exists(
            os.path.join(uploads, ".meta", p + ".yaml")
        ):
            lose("%s was moved or deleted but is still on disk" % p)
    for old, new, want in either:
        here = [x for x in (old, new) if os.path.isfile(os.path.join(uploads, x))]
        if (
            len(here) != 1
            or b3sum_files([os.path.join(uploads, here[0])])[os.path.join(uploads, here[0])] != want
        ):
            lose("unanswered move %s -> %s: found at %s" % (old, new, here))

    # Meta edits: the last acknowledged value in the YAML, in the API object and in search.
    for (p, field), rec in sorted(edits.items()):
        # The last acknowledged value, or one sent after it that got no answer.
        allowed = [rec["value"]] + maybe.get((p, field), [])
        if p not in files and not p.startswith("docs/"):
            lose("meta %s of %s: the file is no longer there" % (field, p))
            continue
        try:
            with open(os.path.join(uploads, ".meta", p + ".yaml"), encoding="utf-8") as f:
                yaml = f.read()
        except OSError as e:
            lose("meta %s of %s: %s" % (field, p, e))
            continue
        values = "|".join(re.escape(v) for v in allowed)
        if not re.search(r"^%s: ['\"]?(%s)['\"]?$" % (re.escape(field), values), yaml, re.M):
            lose("meta %s of %s: the YAML does not hold %r" % (field, p, rec["value"]))
        status, body = get("/api/files?path=%s&token=%s" % (urllib.parse.quote(p, safe=""), tok))
        if status != 200 or body["data"].get(field) not in allowed:
            lose("meta %s of %s: the API answered %d %s" % (field, p, status, str(body)[:200]))
            continue
        word = body["data"][field].split()[-1]
        status, body = get("/api/files/search?q=%s&token=%s" % (word, tok))
        if status != 200 or p not in [h["path"] for h in body["data"]]:
            lose(
                "meta %s of %s: search for %s answered %d %s"
                % (field, p, word, status, str(body)[:200])
            )

    if stats is None:
        lose("the writers' log has no closing counters: the writers did not finish")
    print(
        "CHECKED files=%d gone=%d edits=%d lost=%d" % (len(files), len(gone), len(edits), len(lost))
    )
    return 1 if lost else 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "seed" and len(argv) == 6:
        seed(argv[2], argv[3], argv[4], float(argv[5]))
    elif cmd == "reads" and len(argv) == 5:
        reads(argv[2], argv[3], argv[4])
    elif cmd == "write" and len(argv) == 8:
        threads = {
            k.lower(): int(os.environ.get(k, d))
            for k, d in (("UPLOADERS", 3), ("EDITORS", 2), ("MOVERS", 1))
        }
        write(argv[2], argv[3], argv[4], argv[5], float(argv[6]), argv[7], **threads)
    elif cmd == "check" and len(argv) == 6:
        return check(argv[2], argv[3], argv[4], argv[5])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
