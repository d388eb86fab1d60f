#!/bin/sh
# One-shot job: wait for the server, create the namespace, register the connector's search attributes.
set -eu
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do sleep 2; done
temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 \
  || temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS"
for name in VtexOrderId MarketplaceOrderId OrderStatus Connection ErrorCode; do
  temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" \
    --name "$name" --type Keyword 2>/dev/null || echo "search attribute $name already exists"
done
