# What compose v1 hashes of each service of a project, as `config --hash=*`
# computes it: the project is read from the same global arguments, parsed by
# compose's own command-line parser; each service's `config_dict()` is printed
# exactly as compose's `json_hash` serialises it before hashing.
# Run by nginx-rollout with compose's own Python interpreter.
import json
import sys

from compose.cli.command import project_from_options
from compose.cli.docopt_command import DocoptDispatcher
from compose.cli.main import TopLevelCommand

options, _, _ = DocoptDispatcher(TopLevelCommand, {'options_first': True}).parse(
    sys.argv[1:] + ['config'])
project = project_from_options('.', options)
out = {}
for service in project.services:
    text = json.dumps(service.config_dict(), sort_keys=True,
                      separators=(',', ':'), default=lambda x: x.repr())
    out[service.name] = {'dict': text, 'hash': service.config_hash}
json.dump(out, sys.stdout)
