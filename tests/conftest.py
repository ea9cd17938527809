# Real-server fixtures (redis_stack_url, redis_cluster_nodes, s3_endpoint, gcs_endpoint,
# azurite_connection_string, ...): see semcache/testing/pytest_plugin.py.
pytest_plugins = ["semcache.testing.pytest_plugin"]
