#pragma once
/// Portable core of the esp-e2ee firmware. Include this; it pulls in the rest.
#include "e2ee_base64.h"
#include "e2ee_crypto.h"
#include "e2ee_json.h"
#include "e2ee_wire.h"
#include "e2ee_store.h"
#include "e2ee_owner.h"
#include "e2ee_transport.h"
#include "e2ee_device.h"
