"""Numbers of the wire, named once: ethertypes, IP protocols, UDP ports and
the flag bits of the headers the decoder and the fast path read (dpkt's way:
every flag a name, no bare ``0x08`` in the readers).

Pure data: no code runs here. The reference decoder (layers.py, decode.py),
the fast frame classes (engine/frames.py) and the control-plane readers
(attribution/mobile.py) import from here, so a port or a flag changes in one
place.
"""

# Ethertypes
ET_IPV4, ET_IPV6, ET_ARP = 0x0800, 0x86DD, 0x0806
ET_VLAN, ET_QINQ, ET_QINQ_OLD = 0x8100, 0x88A8, 0x9100
ET_MPLS, ET_MPLS_MC, ET_PPPOE, ET_PPP = 0x8847, 0x8848, 0x8864, 0x880B
ET_VNTAG, ET_ETAG = 0x8926, 0x893F          # Cisco VN-Tag (4 bytes), 802.1BR E-Tag (6 bytes)
ET_NSH = 0x894F                             # Network Service Header (RFC 8300)
ET_TEB = 0x6558                             # transparent Ethernet bridging: an Ethernet frame follows
ET_ERSPAN2, ET_ERSPAN3 = 0x88BE, 0x22EB
VLAN_ID = 0x0FFF                            # the VLAN id bits of an 802.1Q tag's TCI

# IP protocols
ICMP, IPPROTO_IPIP, TCP, UDP, IPPROTO_IPV6 = 1, 4, 6, 17, 41
IPPROTO_GRE, ICMP6, SCTP, UDPLITE = 47, 58, 132, 136

# IPv4: the first byte of a header without options (version 4, IHL 5); flags and fragment offset
IPV4_NO_OPTIONS = 0x45
IPV4_MF, IPV4_OFFSET = 0x2000, 0x1FFF
IPV4_FRAGMENT = IPV4_MF | IPV4_OFFSET       # either set: a fragment
IPV4_HEADER, IPV6_HEADER = 20, 40
IP_VERSION = 0xF0                           # the version nibble of an IP header's first byte

# Tunnel kinds (``Packet.tunnels`` entries and tunnel-endpoint evidence)
GTPU, VXLAN, GENEVE, GRE, ERSPAN, IPIP = "gtp-u", "vxlan", "geneve", "gre", "erspan", "ip-in-ip"

# UDP ports
GTPU_PORT, GTPC_PORT, PFCP_PORT = 2152, 2123, 8805
VXLAN_PORTS, GENEVE_PORT, GRE_UDP_PORT = (4789, 8472), 6081, 4754
TUNNEL_UDP_PORTS = {GTPU_PORT: GTPU, VXLAN_PORTS[0]: VXLAN, VXLAN_PORTS[1]: VXLAN, GENEVE_PORT: GENEVE,
                    GRE_UDP_PORT: GRE}
CONTROL_UDP_PORTS = frozenset((GTPC_PORT, PFCP_PORT))   # the mobile control plane (GTP-C, PFCP)

# GTP-U v1 (3GPP TS 29.281): first byte version(3) PT E S PN; message type; extension header types
GTP_VERSION, GTP_VERSION_1, GTP_PT, GTP_E, GTP_S, GTP_PN = 0xE0, 0x20, 0x10, 0x04, 0x02, 0x01
GTP_OPTIONAL = GTP_E | GTP_S | GTP_PN       # any set: the 4 optional bytes follow the header
GTP_G_PDU = 0xFF
GTP_EXT_PDU_SESSION = 0x85                  # PDU Session Container (5G, TS 38.415)

# VXLAN (RFC 7348): the I flag (a valid VNI)
VXLAN_I = 0x08

# Geneve (RFC 8926): version (2 bits) and options length in 4-byte words (6 bits)
GENEVE_VERSION, GENEVE_OPTIONS = 0xC0, 0x3F

# GRE (RFC 2784, 2890; PPTP's enhanced GRE, RFC 2637)
GRE_C, GRE_K, GRE_S, GRE_A, GRE_VERSION = 0x8000, 0x2000, 0x1000, 0x0080, 0x0007
