// The TCP socket behind an HTTP request, to notice a client that hung up while a
// non-streaming answer is being generated (cpp-httplib 0.11 does not give handlers the socket;
// streaming responses notice through failed writes instead).
#pragma once

#include <string>

namespace kiln::server {

// The accepted socket whose local port is local_port and whose peer is remote_addr:remote_port
// (as cpp-httplib reports them), found among this process's descriptors; -1 if none. The
// descriptor stays valid while the request's handler runs (cpp-httplib closes it afterwards).
int FindConnectionSocket(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer closed or reset the connection (FIN/RST seen), without reading data.
bool PeerHungUp(int fd);

}  // namespace kiln::server
