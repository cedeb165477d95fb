"""The command: options, the modes (train here, on a cluster, --check), progress and exit codes. The only
code that imports click or tqdm, or calls sys.exit."""
