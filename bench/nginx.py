"""nginx as the non-stream mock upstream: a canned ``chat.completion`` from a ``return`` directive.

nginx answers in a few microseconds of CPU, so it is never what limits a proxy under test. It runs in the
foreground as a single process (``master_process off``) so stopping its process group stops it completely;
everything it writes lives in the run's temporary directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import payloads


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()), None
    )


def write_config(workdir: Path, port: int) -> Path:
    """An nginx.conf serving POST /v1/chat/completions on 127.0.0.1:port with the canned answer."""
    body = payloads.chat_completion().decode()
    if "'" in body or "$" in body:
        raise ValueError("the canned answer cannot be embedded in an nginx single-quoted string")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir / "body"};
    proxy_temp_path {workdir / "proxy"};
    fastcgi_temp_path {workdir / "fastcgi"};
    uwsgi_temp_path {workdir / "uwsgi"};
    scgi_temp_path {workdir / "scgi"};
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_buffer_size 64k;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 '{body}';
        }}
        location / {{ return 404; }}
    }}
}}
""",
        encoding="utf-8",
    )
    return conf


def command(binary: str, conf: Path) -> list[str]:
    return [binary, "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "error.log")]
