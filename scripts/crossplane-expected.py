#!/usr/bin/env python3
"""Regenerates fixtures/crossplane/: what crossplane 0.5.8 makes of the corpus.

`tests/offline/conf_crossplane.rs` compares `conf parse`, `conf lex` and
`conf build` with these files, so the tests need no crossplane. Run it after
a change to fixtures/corpus, with crossplane installed
(`python3 -m venv /tmp/xp && /tmp/xp/bin/pip install crossplane==0.5.8`):

    /tmp/xp/bin/python scripts/crossplane-expected.py

Payloads are crossplane's `parse` with its directive checks off
(check_ctx=False, check_args=False), made from inside fixtures/corpus so that
paths are relative to it, on a machine without files outside the corpus: an
absolute include (`/etc/nginx/proxy_params`) is a missing file. One JSON line per corpus file nginx accepts:
  parse.jsonl                {"file", "payload"}           --single-file
  parse-comments.jsonl       the same with comments, only where it differs
  parse-includes.jsonl       includes followed, only where it differs from parse.jsonl
  parse-includes-comments.jsonl  includes and comments, only where it differs
                             from parse-comments.jsonl (or parse.jsonl)
  samples/NAME.lex.json      `crossplane lex -n` of a few files (SAMPLES below)
  samples/NAME.conf          `crossplane build` of their parse (with comments)
"""
import json
import os
import sys

import glob as real_glob

import crossplane
import crossplane.parser
from crossplane.builder import build

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORPUS = os.path.join(ROOT, "fixtures", "corpus")
OUT = os.path.join(ROOT, "fixtures", "crossplane")

# Files nginx rejects (the corpus README's list and conf_corpus.rs's
# INVALID_BY_NGINX), and the symlink git stores as a file holding its target.
REJECTED = {
    "certbot/certbot/src/certbot/_internal/tests/plugins/nginx/testdata/etc_nginx/broken.conf",
    "certbot/certbot/src/certbot/_internal/tests/plugins/nginx/testdata/etc_nginx/ubuntu_nginx_1_4_6/default_vhost/nginx/naxsi-ui.conf.1.4.1",
    "crossplane/tests/configs/includes-globbed/servers/locations/not-included.conf",
    "crossplane/tests/configs/includes-regular/conf.d/bar.conf",
    "crossplane/tests/configs/includes-regular/conf.d/foo.conf",
    "nginx-go-crossplane/testdata/configs/includes-globbed/servers/locations/not-included.conf",
    "nginx-go-crossplane/testdata/configs/includes-regular/conf.d/bar.conf",
    "nginx-go-crossplane/testdata/configs/includes-regular/conf.d/foo.conf",
    "nginx-go-crossplane/testdata/configs/braces/extra-brace.conf",
    "nginx-go-crossplane/testdata/configs/braces/missing-brace.conf",
    "nginx-go-crossplane/testdata/configs/premature-eof/nginx.conf",
    "crossplane/tests/configs/missing-semicolon/broken-above.conf",
    "crossplane/tests/configs/missing-semicolon/broken-below.conf",
    "crossplane/tests/configs/quote-behavior/nginx.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon-above/nginx.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon-below/nginx.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon/broken-above.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon/broken-below.conf",
    "nginx-go-crossplane/testdata/configs/quote-behavior/nginx.conf",
    "certbot/certbot/src/certbot/_internal/tests/plugins/nginx/testdata/etc_nginx/ubuntu_nginx_1_4_6/default_vhost/nginx/sites-enabled/default",
}

# Files whose `crossplane lex` tokens and `crossplane build` text are kept: Lua, `if`, quoting, `${}`,
# comments on directive lines, non-ASCII, a map and a large real config.
SAMPLES = {
    "lua": "crossplane/tests/configs/lua-block-tricky/nginx.conf",
    "russian": "crossplane/tests/configs/russian-text/nginx.conf",
    "non-unicode": "crossplane/tests/configs/non-unicode/nginx.conf",
    "quoted-right-brace": "crossplane/tests/configs/quoted-right-brace/nginx.conf",
    "messy": "crossplane/tests/configs/messy/nginx.conf",
    "comments-between-args": "crossplane/tests/configs/comments-between-args/nginx.conf",
    "if-expr": "nginx-go-crossplane/testdata/configs/if-expr/nginx.conf",
    "totalcache": "certbot/certbot-compatibility-test/nginx/nginx-roundtrip-testdata/wordpress-caching/totalcache-enhanced.conf",
    "h5bp": "server-configs-nginx/nginx.conf",
    "openresty": "docker-openresty/nginx.conf",
    "ocsp": "server-configs-nginx/h5bp/tls/ocsp_stapling.conf",
}


def inside(path):
    """Whether an include path stays in the corpus (absolute ones, such as
    /etc/nginx/proxy_params, must not reach this machine's files)."""
    return not os.path.isabs(path)


class CorpusGlob:
    """`glob` for crossplane's parser that sees nothing outside the corpus."""
    has_magic = staticmethod(real_glob.has_magic)

    @staticmethod
    def glob(pattern):
        return real_glob.glob(pattern) if inside(pattern) else []


def corpus_open(path, *args, **kwargs):
    if not inside(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    return open(path, *args, **kwargs)


crossplane.parser.glob = CorpusGlob
crossplane.parser.open = corpus_open


def files():
    out = []
    for d, dirs, names in os.walk("."):
        dirs[:] = [x for x in dirs if not (d == "." and x == "LICENSES")]
        for n in names:
            p = os.path.join(d, n)[2:]
            if n != "README.md" and p not in REJECTED:
                out.append(p)
    return sorted(out)


def parse(p, comments, single):
    return crossplane.parse(p, comments=comments, single=single, check_ctx=False, check_args=False)


def line(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def main():
    os.chdir(CORPUS)
    if crossplane.__version__ != "0.5.8":
        sys.exit(f"crossplane {crossplane.__version__}: the fixtures are made with 0.5.8")
    os.makedirs(os.path.join(OUT, "samples"), exist_ok=True)
    outs = {k: open(os.path.join(OUT, k + ".jsonl"), "w", encoding="utf-8") for k in
            ["parse", "parse-comments", "parse-includes", "parse-includes-comments"]}
    for p in files():
        single = parse(p, False, True)
        comments = parse(p, True, True)
        includes = parse(p, False, False)
        both = parse(p, True, False)
        outs["parse"].write(line({"file": p, "payload": single}))
        if comments != single:
            outs["parse-comments"].write(line({"file": p, "payload": comments}))
        if includes != single:
            outs["parse-includes"].write(line({"file": p, "payload": includes}))
        if both != comments:
            outs["parse-includes-comments"].write(line({"file": p, "payload": both}))
    for f in outs.values():
        f.close()
    for name, p in SAMPLES.items():
        text = build(parse(p, True, True)["config"][0]["parsed"]).rstrip() + "\n"
        with open(os.path.join(OUT, "samples", name + ".conf"), "w", encoding="utf-8") as f:
            f.write(text)
        tokens = [[t, n] for t, n, _ in crossplane.lex(p)]
        with open(os.path.join(OUT, "samples", name + ".lex.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps({"file": p, "tokens": tokens}, ensure_ascii=False) + "\n")
    print("wrote", OUT)


main()
