import os
import sys

from gptlib.cli import main

try:
    code = main()
except KeyboardInterrupt:  # Ctrl-C before main's own handler was reached (still starting up)
    code = 130
if code == 130:  # interrupted: everything is cleaned up; end now, with the status a shell expects
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)
sys.exit(code)
