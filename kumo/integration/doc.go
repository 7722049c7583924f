// Package integration holds the end-to-end tests of a kumo cluster: they
// build the real binaries once (localcluster.Main), start managers, servers
// and gateways as processes on 127.0.0.1 with kernel-chosen ports, talk to
// them as memcached clients and admin tools would, and kill them with
// SIGKILL.
package integration
