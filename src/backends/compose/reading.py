# Compose v1's `config`, and what it hashes of each service as `config
# --hash=*` computes it, from one Python start: the global arguments are
# parsed by compose's own command-line parser, `config` is compose's own
# command (its output captured), and each service's `config_dict()` is
# printed exactly as compose's `json_hash` serialises it before hashing.
# With `up` (a list of `up` arguments), compose's own `up` command then runs
# with them on the project just read, as `docker-compose ARGS... up ...` runs
# it (compose's `perform_command`: the same global options make the same
# project), in the same process: one interpreter start and one project load,
# not two. Whether it succeeded and what it said are printed too (not its
# warnings of orphan containers and of swarm mode).
# What to read comes on stdin as one JSON line, `{"dir": the directory compose
# runs in, "args": its global arguments, "up": null or up's}`, read once
# compose's modules are loaded: the interpreter can start before the rollout
# knows the project, and its imports (half its time) overlap the discovery.
# Its run is on a deploy's critical path, so the collector does not run
# while compose's modules load (they make no garbage worth collecting), and
# the process ends as soon as its answer is out: what is left of it, the
# interpreter tearing down every module compose loaded, is tens of ms.
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
gc.enable()

request = json.loads(sys.stdin.readline())
os.chdir(request['dir'])
args, then_up = request['args'], request['up']
options, handler, command_options = DocoptDispatcher(
    main.TopLevelCommand, {'options_first': True}).parse(args + ['config'])
config = io.StringIO()
with contextlib.redirect_stdout(config):
    handler(main.TopLevelCommand(None, options=options), command_options)
project = project_from_options('.', options)
services = {}
for service in project.services:
    text = json.dumps(service.config_dict(), sort_keys=True,
                      separators=(',', ':'), default=lambda x: x.repr())
    services[service.name] = {'dict': text, 'hash': service.config_hash}
printed = {'config': config.getvalue(), 'services': services}
if then_up is not None:
    # `up` looks for orphan containers only to warn of them (inspecting every
    # container of the project): it makes the same containers without.
    os.environ['COMPOSE_IGNORE_ORPHANS'] = '1'
    # It asks the daemon's `info` only to warn of swarm mode.
    main.warn_for_swarm_mode = lambda client: None
    up_options, up, up_command_options = DocoptDispatcher(
        main.TopLevelCommand, {'options_first': True}).parse(args + then_up)
    said = io.StringIO()
    status = 0
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        try:
            with errors.handle_connection_errors(project.client):
                up(main.TopLevelCommand(project, options=up_options), up_command_options)
        except (Exception, SystemExit) as e:
            print(getattr(e, 'msg', None) or repr(e), file=said)
            status = 1
    printed['up'] = {'status': status, 'said': said.getvalue()}
json.dump(printed, sys.stdout)
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
