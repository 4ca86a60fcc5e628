#!/bin/sh
# The benchmark's system tools (Debian packages): the load generator and the non-stream mock upstream.
set -eu
apt-get update -qq
apt-get install -y -qq wrk nginx-light
