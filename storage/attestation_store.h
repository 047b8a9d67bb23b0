// AttestationStore: the node's durable state, all roles in one object.
//
// The store is used by role, each a small interface of its own:
//   StoreWriter           storage/store_writer.h           the one atomic Write(WriteBatch)
//   Ledger                storage/ledger.h                 attestations, disputes, resolutions, statistics
//   TransparencyLogStore  storage/transparency_log_store.h the node's log: entries, tiles, checkpoints
//   PeerStore             storage/peer_store.h             followed peers: progress, refused entries, forks
//   DerivationStore       storage/derivation_store.h       .drv files for rebuilders, with a write of its own
//   PolicyStore           storage/policy_store.h           the chain of adopted policies, with a write of its own
// An implementation implements all six, behind this union: SqliteAttestationStore (the default, one
// file, WAL) and MemoryAttestationStore (tests), both passing
// tests/storage/attestation_store_contract_test.cc, tests/storage/derivation_store_contract_test.cc and
// tests/storage/policy_store_contract_test.cc.
// Whoever owns the store (server/node.h) holds an AttestationStore; every other user takes only the
// role it uses.
//
// Thread-safety: every method may be called from any thread; implementations serialise writes.
#ifndef ATTEST_STORAGE_ATTESTATION_STORE_H_
#define ATTEST_STORAGE_ATTESTATION_STORE_H_

#include "storage/derivation_store.h"
#include "storage/ledger.h"
#include "storage/peer_store.h"
#include "storage/policy_store.h"
#include "storage/store_writer.h"
#include "storage/transparency_log_store.h"

namespace attest::storage {

class AttestationStore : public StoreWriter,
                         public Ledger,
                         public TransparencyLogStore,
                         public PeerStore,
                         public DerivationStore,
                         public PolicyStore {
 public:
  ~AttestationStore() override = default;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_ATTESTATION_STORE_H_
