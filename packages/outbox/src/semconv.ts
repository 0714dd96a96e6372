// OpenTelemetry messaging semantic conventions (v1.36), copied so the package needs only @opentelemetry/api.

/** The messaging system; the relay reports `'oms_outbox'`, a Redis Streams consumer `'redis'`. */
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
/** The topic (stream, queue) a message is sent to. */
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
/** `'send'`, `'receive'`, `'process'`, `'settle'`, `'create'`. */
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
/** The system-specific operation name, such as `'publish'`. */
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
/** The number of messages in a batch operation. */
export const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count';
/** The id of one message (span attribute only: never a metric attribute). */
export const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
/** The consumer group of a consumer. */
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = 'messaging.consumer.group.name';
/** The class of error an operation ended with. */
export const ATTR_ERROR_TYPE = 'error.type';
