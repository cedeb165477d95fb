"""How runs are made: the one runner that trains and times any net, worker processes for other Keras
backends, jobs on a Dask cluster, and where the data comes from."""
