import ArgumentParser

/// `minirbt-admin`: publishes model versions and rolls them out to a fleet of `minirbt-stream` instances.
public struct AdminCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "minirbt-admin",
        abstract: "Publish MiniRBT model versions and roll them out to running minirbt-stream instances.",
        discussion: """
            Rollout flow (hot swap, no restart, no lost or reordered event):

              1. keygen    Create the Ed25519 key pair that signs control messages. Give the public key to
                           every service (minirbt-stream run --verify-key minirbt-control.pub); keep the
                           private key with the operators.
                             minirbt-admin keygen --out ~/.minirbt
              2. publish   Copy a checkpoint into the registry with checksums and golden self-test answers.
                           --baseline adds a drift baseline: the model's answers on representative texts.
                             minirbt-admin publish --registry /models --name sentiment --version v2 \\
                               --model-dir ./checkpoints/v2 --baseline ./validation.jsonl
              3. deploy    Send a signed control message; --canary routes a stable share of keys to the new
                           version, --shadow runs it on every event and publishes to the shadow topic only.
                             minirbt-admin deploy sentiment v2 --canary 20 --wait \\
                               --registry /models --brokers kafka:9092 --key ~/.minirbt/minirbt-control.key
              4. status    Watch the fleet: versions, errors, events/s, lag, drift per instance; in shadow mode
                           the share of events where the candidate agreed with the primary (AGREEMENT).
                             minirbt-admin status --brokers kafka:9092
                 drift     PSI of label mix, confidence and length against the baseline, per instance.
                             minirbt-admin drift sentiment --brokers kafka:9092
              5. promote   Make the canary the only serving version; --min-agreement 0.97 refuses unless the
                           shadow candidate agreed on at least 97 % of the events the live instances compared.
                             minirbt-admin promote sentiment --min-agreement 0.97 --wait --registry /models --brokers ... --key ...
              6. rollback  Serve the previously active version again (or abandon a canary).
                             minirbt-admin rollback sentiment --wait --registry /models --brokers ... --key ...

            Instances load, verify (checksums, shapes, golden examples) and warm up a version before
            swapping; a version that fails keeps the old one serving and is reported, and `--wait` exits
            non-zero naming the problem. Unsigned, forged, replayed, expired and misfiled messages are
            rejected. Control messages live on a compacted topic (--control-topic, default minirbt-control),
            one key per message (<deployment>/<sequence>); heartbeats on --status-topic (default
            minirbt-status). `history` lists every record, accepted or rejected, and each replica's outcome.
            librdkafka settings: repeat --kafka key=value, or KAFKA_* environment variables.
            """,
        subcommands: [KeygenCommand.self, PublishCommand.self, ListCommand.self, DeployCommand.self,
                      PromoteCommand.self, RollbackCommand.self, StatusCommand.self, DriftCommand.self, HistoryCommand.self])

    public init() {}
}
