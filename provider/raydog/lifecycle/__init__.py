"""Lifecycle code the node resources share: a node pool's create/read/remove
(node_pool.py), the single-node resources' CRUD (single_node.py), import (importing.py)
and the one place platform errors become diagnostics (diagnostics.py)."""
