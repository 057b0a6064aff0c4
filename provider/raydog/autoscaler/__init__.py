"""Ray's autoscaler on a RayDog head: the node provider shipped to the head (``raydog_node_provider``,
stdlib and Ray only, never imported by the provider) and what the provider sends with it (``shipping``)."""
