"""Control-plane messages read beside the decoder: bounded parsers from
bytes to facts, no state. segment.py: LLDP, CDP, STP, ARP (the frames a
segment's equipment announces itself in); mobile.py: GTPv1-C, GTPv2-C and
PFCP (the mobile core's signalling). What the facts teach — devices,
neighbours, tunnel nodes and their roles — is kept by attribution/discovery.py
and attribution/mobile.py. (NDP needs no parser of its own: the decoder's
ICMPv6 packet carries its source address and MAC.)
"""
