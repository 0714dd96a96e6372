// OpenTelemetry messaging semantic conventions (v1.36), copied so the package needs only @opentelemetry/api.

/**
 * The messaging system; the relay reports `'oms_outbox'`, a Redis Streams consumer `'redis'`.
 *
 * @example
 * import { ATTR_MESSAGING_SYSTEM } from '@oms/outbox';
 * const attributes = { [ATTR_MESSAGING_SYSTEM]: 'orders' };
 */
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
/**
 * The topic (stream, queue) a message is sent to.
 *
 * @example
 * import { ATTR_MESSAGING_DESTINATION_NAME } from '@oms/outbox';
 * const attributes = { [ATTR_MESSAGING_DESTINATION_NAME]: 'orders' };
 */
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
/**
 * `'send'`, `'receive'`, `'process'`, `'settle'`, `'create'`.
 *
 * @example
 * import { ATTR_MESSAGING_OPERATION_TYPE } from '@oms/outbox';
 * const attributes = { [ATTR_MESSAGING_OPERATION_TYPE]: 'orders' };
 */
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
/**
 * The system-specific operation name, such as `'publish'`.
 *
 * @example
 * import { ATTR_MESSAGING_OPERATION_NAME } from '@oms/outbox';
 * const attributes = { [ATTR_MESSAGING_OPERATION_NAME]: 'orders' };
 */
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
/**
 * The number of messages in a batch operation.
 *
 * @example
 * import { ATTR_MESSAGING_BATCH_MESSAGE_COUNT } from '@oms/outbox';
 * const attributes = { [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: 'orders' };
 */
export const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count';
/**
 * The id of one message (span attribute only: never a metric attribute).
 *
 * @example
 * import { ATTR_MESSAGING_MESSAGE_ID } from '@oms/outbox';
 * const attributes = { [ATTR_MESSAGING_MESSAGE_ID]: 'orders' };
 */
export const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
/**
 * The consumer group of a consumer.
 *
 * @example
 * import { ATTR_MESSAGING_CONSUMER_GROUP_NAME } from '@oms/outbox';
 * const attributes = { [ATTR_MESSAGING_CONSUMER_GROUP_NAME]: 'orders' };
 */
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = 'messaging.consumer.group.name';
/**
 * The class of error an operation ended with.
 *
 * @example
 * import { ATTR_ERROR_TYPE } from '@oms/outbox';
 * const attributes = { [ATTR_ERROR_TYPE]: 'orders' };
 */
export const ATTR_ERROR_TYPE = 'error.type';
