#!/usr/bin/env bash
# Makes sure the tools the integration tests need are installed: PostgreSQL server binaries
# (/usr/lib/postgresql/*/bin: initdb, pg_ctl, postgres, psql, pg_basebackup), MariaDB (mariadbd,
# mariadb-install-db, the mariadb client), runuser, and for the cluster tests patroni, etcd
# (etcd-server, etcd-client), pgbouncer, mariadb-backup, galera-4, rsync and socat. The tests start throwaway servers of their
# own on free loopback ports; this script never starts or uses the system services on 5432/3306
# (and keeps apt from starting them while it installs the packages).
#
# Idempotent; exits at once when everything is there. Installing needs root (Debian/Ubuntu, apt).
#   --check   only report what is missing (exit 1 if anything is)
set -euo pipefail

check_only=0
if [[ ${1:-} == --check ]]; then check_only=1; fi

missing=()

have_exec() { # name [fallback paths...]
	local name=$1; shift
	command -v "$name" >/dev/null 2>&1 && return 0
	local p
	for p in "$@"; do [[ -x $p ]] && return 0; done
	return 1
}

pg_ok=0
for bin in /usr/lib/postgresql/*/bin; do
	if [[ -x $bin/initdb && -x $bin/pg_ctl && -x $bin/postgres && -x $bin/psql && -x $bin/pg_basebackup ]]; then
		pg_ok=1
	fi
done
if [[ $pg_ok == 0 ]]; then
	# Not a Debian layout: all of them on PATH, side by side, will do.
	if initdb=$(command -v initdb 2>/dev/null); then
		d=$(dirname "$initdb")
		[[ -x $d/pg_ctl && -x $d/postgres && -x $d/psql && -x $d/pg_basebackup ]] && pg_ok=1
	fi
fi
[[ $pg_ok == 1 ]] || missing+=("PostgreSQL server (initdb, pg_ctl, postgres, psql, pg_basebackup)")

have_exec mariadbd /usr/sbin/mariadbd || missing+=("mariadbd")
have_exec mariadb-install-db /usr/bin/mariadb-install-db || missing+=("mariadb-install-db")
have_exec mariadb /usr/bin/mariadb || missing+=("mariadb client")

# The cluster tests (Patroni on etcd, Galera, PgBouncer, MariaDB replicas): Debian's packages.
cluster_pkgs=()
have_exec patroni /usr/bin/patroni || cluster_pkgs+=(patroni)
have_exec etcd /usr/bin/etcd || cluster_pkgs+=(etcd-server)
have_exec etcdctl /usr/bin/etcdctl || cluster_pkgs+=(etcd-client)
have_exec pgbouncer /usr/sbin/pgbouncer || cluster_pkgs+=(pgbouncer)
have_exec mariadb-backup /usr/bin/mariadb-backup || cluster_pkgs+=(mariadb-backup)
[[ -e /usr/lib/galera/libgalera_smm.so ]] || cluster_pkgs+=(galera-4)
have_exec rsync /usr/bin/rsync || cluster_pkgs+=(rsync)
have_exec socat /usr/bin/socat || cluster_pkgs+=(socat)
if [[ ${#cluster_pkgs[@]} != 0 ]]; then
	missing+=("cluster tools (${cluster_pkgs[*]})")
fi

runuser_missing=0
if [[ $(id -u) == 0 ]]; then
	# As root the harness runs initdb/pg_ctl as user postgres and mariadbd as user mysql.
	have_exec runuser /usr/sbin/runuser /sbin/runuser || { missing+=("runuser"); runuser_missing=1; }
	id postgres >/dev/null 2>&1 || missing+=("system user postgres")
	id mysql >/dev/null 2>&1 || missing+=("system user mysql")
fi

if [[ ${#missing[@]} == 0 ]]; then
	echo "ensure-servers: PostgreSQL, MariaDB and cluster binaries (Patroni, etcd, Galera, PgBouncer) present"
	exit 0
fi

echo "ensure-servers: missing: $(IFS=';'; echo "${missing[*]}")" >&2
if [[ $check_only == 1 ]]; then
	exit 1
fi
if [[ $(id -u) != 0 ]]; then
	cat >&2 <<'MSG'
ensure-servers: not root, cannot install. Install them yourself, e.g. on Debian/Ubuntu:
    sudo apt-get update && sudo apt-get install -y postgresql mariadb-server mariadb-client patroni etcd-server etcd-client pgbouncer mariadb-backup galera-4 rsync socat
or run this script (or 'make test') as root. Alternatively point the fast tests at servers of your own
with HASQL_TEST_PG_DSN / HASQL_TEST_MYSQL_DSN (tests that stop or kill a server still need the local
binaries).
MSG
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-servers: apt-get not found: install PostgreSQL and MariaDB server packages with your system's package manager" >&2
	exit 1
fi

packages=(postgresql mariadb-server mariadb-client)
if [[ $runuser_missing == 1 ]]; then packages+=(util-linux); fi
packages+=("${cluster_pkgs[@]}")

# Keep the packages' maintainer scripts from starting the system services (policy-rc.d exit 101 =
# "action forbidden", honoured by invoke-rc.d and deb-systemd-invoke) unless a policy already exists.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

echo "ensure-servers: installing ${packages[*]} (a minute or two)" >&2
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"

# Check again.
if ! bash "${BASH_SOURCE[0]}" --check; then
	echo "ensure-servers: still missing something after apt-get install" >&2
	exit 1
fi
