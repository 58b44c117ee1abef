#!/bin/sh
# LocalStack "ready" hook: the bucket the Sluice nodes share.
set -eu
awslocal s3 mb s3://sluice || awslocal s3api head-bucket --bucket sluice
