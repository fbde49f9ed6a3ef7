# Compose v1's `config`, and what it hashes of each service as `config
# --hash=*` computes it, from one Python start: the global arguments are
# parsed by compose's own command-line parser, `config` is compose's own
# command (its output captured), and each service's `config_dict()` is
# printed exactly as compose's `json_hash` serialises it before hashing.
# With `templates` (a list of services), compose then makes one more
# container of each on the project just read, as `up --no-start --no-deps
# --no-recreate --scale` does (its networks and volumes made, its image
# pulled if missing, the next number): `Service.create_container`, the call
# `up` makes for it. Only the container's create request does not reach the
# daemon: compose's own request body is printed instead, with whether it
# was made and what compose said. The rollout creates the service's
# containers from that body, exactly what compose asks the daemon for,
# without one container made, inspected and removed per service first.
# What to read comes on stdin as one JSON line, `{"dir": the directory compose
# runs in, "args": its global arguments, "templates": null or the services}`,
# read once compose's modules are loaded: the interpreter can start before
# the rollout knows the project, and its imports (most of its time) overlap the
# discovery.
# Its run is on a deploy's critical path, so the collector does not run
# while compose's modules load (they make no garbage worth collecting) and
# never scans what they made (frozen once they are loaded: else its first
# collection after them takes 10-45 ms under load); compose's second load of
# the same files, for the project after `config`, is answered by its first
# (below); the answer goes out in one write (`PYTHONUNBUFFERED` would make
# hundreds); and the process ends as soon as it is out: what is left of it,
# the interpreter tearing down every module compose loaded, is tens of ms.
# Run by nginx-rollout with compose's own Python interpreter, as root:
# `python -c` puts the directory it starts in first on the module path, where
# a file a container wrote through a bind mount of it (`yaml.py`, `json.py`)
# would be imported in place of the real module. It comes off the path before
# anything is imported (`sys` and `gc` are built in); `docker-compose` itself
# puts its own directory there, not the project's.
import sys
if sys.path and sys.path[0] in ('', '.'):
    del sys.path[0]
import gc  # noqa: E402
gc.disable()
import contextlib  # noqa: E402
import copy  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import mimetypes  # noqa: E402
import os  # noqa: E402

# jsonschema opens compose's schema through a `file:` URL, and urllib looks
# its content type up in the system's mime types, read from disk for that.
mimetypes.init([])

from compose.cli import errors, main  # noqa: E402
from compose.cli.command import project_from_options  # noqa: E402
from compose.cli.docopt_command import DocoptDispatcher  # noqa: E402
from compose.utils import json_hash  # noqa: E402
from docker.api.client import APIClient  # noqa: E402
import compose.config  # noqa: E402
if hasattr(gc, 'freeze'):  # Python 3.7 and later
    gc.freeze()
gc.enable()


compose_load = compose.config.load
loaded = []


def load_once(*args, **kwargs):
    """Compose's `config.load`, except that a second call with inputs equal
    to an earlier one's (the same files, as parsed, and environment) returns
    a copy of that one's answer, made as it returned: `config` and the
    project each load the files, and the second load (a third of what
    follows the request) would compute the same thing again. An answer that
    cannot be copied is not kept."""
    for i, (given, answer) in enumerate(loaded):
        if given == (args, kwargs):
            del loaded[i]
            return answer
    answer = compose_load(*args, **kwargs)
    try:
        loaded.append(((args, kwargs), copy.deepcopy(answer)))
    except Exception:  # a value that cannot be copied: the second load runs
        pass
    return answer


compose.config.load = load_once

request = json.loads(sys.stdin.readline())
os.chdir(request['dir'])
args, templates = request['args'], request['templates']
options, handler, command_options = DocoptDispatcher(
    main.TopLevelCommand, {'options_first': True}).parse(args + ['config'])
config = io.StringIO()
with contextlib.redirect_stdout(config):
    handler(main.TopLevelCommand(None, options=options), command_options)
project = project_from_options('.', options)
services = {}
for service in project.services:
    # `config_hash` is `json_hash(config_dict())`: one `config_dict()`, whose
    # image id is a request to the daemon, serves both.
    d = service.config_dict()
    text = json.dumps(d, sort_keys=True, separators=(',', ':'),
                      default=lambda x: x.repr())
    services[service.name] = {'dict': text, 'hash': json_hash(d)}
printed = {'config': config.getvalue(), 'services': services}


class Asked(Exception):
    """Compose asked the daemon to create a container; the request is kept."""


if templates is not None:
    asked, made = {}, {}

    def ask(client, config, name=None, *_, **__):
        asked['request'] = {'name': name, 'body': config}
        raise Asked()

    APIClient.create_container_from_config = ask
    said = io.StringIO()
    failed = False
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        try:
            with errors.handle_connection_errors(project.client):
                project.initialize()
                for service in project.get_services(templates):
                    if service.custom_container_name:
                        raise SystemExit(
                            'service %s sets container_name: compose cannot make '
                            'a second container of it' % service.name)
                    try:
                        container = service.create_container(quiet=True)
                    except Asked:
                        made[service.name] = asked.pop('request')
                    else:
                        container.remove(v=True, force=True)
                        raise SystemExit(
                            'compose created a container of %s without asking '
                            'through create_container_from_config' % service.name)
        except (Exception, SystemExit) as e:
            print(getattr(e, 'msg', None) or str(e) or repr(e), file=said)
            failed = True
    printed['templates'] = {'failed': failed, 'said': said.getvalue(), 'made': made}
sys.stdout.write(json.dumps(printed))
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
