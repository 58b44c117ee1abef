# shellcheck shell=bash
# Sourced by the scripts that start or talk to servers here. Dummy AWS credentials and
# region, always: without them AWS clients (and some emulators) go looking for the cloud
# metadata endpoint, which must never be contacted. And no HTTP proxy for loopback.
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
