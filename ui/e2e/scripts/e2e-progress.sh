#!/bin/sh
# Browser test: prints log lines and progress while it runs.
echo "preparing the release"
echo "MUTASK-PROGRESS: 30 copying files"
sleep 3
echo "warning: disk almost full" >&2
echo "MUTASK-PROGRESS: 100 finished"
echo '{"copied": 3}'
