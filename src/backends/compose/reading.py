# Compose v1's `config`, and what it hashes of each service as `config
# --hash=*` computes it, from one Python start: the global arguments are
# parsed by compose's own command-line parser, `config` is compose's own
# command (its output captured), and each service's `config_dict()` is
# printed exactly as compose's `json_hash` serialises it before hashing.
# Run by nginx-rollout with compose's own Python interpreter.
import contextlib
import io
import json
import sys

from compose.cli.command import project_from_options
from compose.cli.docopt_command import DocoptDispatcher
from compose.cli.main import TopLevelCommand

options, handler, command_options = DocoptDispatcher(
    TopLevelCommand, {'options_first': True}).parse(sys.argv[1:] + ['config'])
config = io.StringIO()
with contextlib.redirect_stdout(config):
    handler(TopLevelCommand(None, options=options), command_options)
project = project_from_options('.', options)
services = {}
for service in project.services:
    text = json.dumps(service.config_dict(), sort_keys=True,
                      separators=(',', ':'), default=lambda x: x.repr())
    services[service.name] = {'dict': text, 'hash': service.config_hash}
json.dump({'config': config.getvalue(), 'services': services}, sys.stdout)
