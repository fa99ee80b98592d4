#!/usr/bin/env python3
"""mutask plugin example: reads the request on stdin, writes one JSON result as the last line."""
import json
import os
import sys

request = json.load(sys.stdin)
config = request["config"]
name = config["name"]
print(f"greeting {name} for step {request['step']['name']}", file=sys.stderr)
if name.lower() == "nobody":
    print(json.dumps({"error": {"class": "client", "message": "there is nobody to greet"}}))
    sys.exit(0)
greeting = f"Hello {name}!"
if config.get("shout"):
    greeting = greeting.upper()
print(json.dumps({
    "output": {"greeting": greeting},
    "metadata": {"task": os.environ.get("MUTASK_TASK_ID", "")},
}))
