import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface OrdersTable {
  id: string;
  customer_id: string;
  status: 'created' | 'payment_pending' | 'paid' | 'cancelled';
  total_cents: number;
  currency: string;
  version: number;
  /** The highest fencing token that wrote this row: a write under an older lease matches no row. */
  fence: ColumnType<string, string | bigint, string | bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface OrderItemsTable {
  order_id: string;
  line: number;
  sku: string;
  quantity: number;
  unit_price_cents: number;
}

export interface PaymentsTable {
  charge_id: string;
  order_id: string;
  amount_cents: number;
  currency: string;
  created_at: Timestamp;
}

export interface IdempotencyKeysTable {
  principal: string;
  key: string;
  request_hash: string;
  order_id: string;
  created_at: Timestamp;
}

export interface AuditLogTable {
  seq: ColumnType<string, string | bigint, never>;
  /** The canonical JSON of the entry: what the hash covers. */
  entry: string;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: number;
  seq: ColumnType<string, string | bigint, string | bigint>;
  hash: string;
}

export interface NotificationsTable {
  message_id: string;
  order_id: string;
  type: string;
  applied_at: Timestamp;
}

export interface MaintenanceTable {
  id: number;
  holder: string;
  reason: string;
  since: Timestamp;
  eta: Timestamp;
}

export interface Database {
  orders: OrdersTable;
  order_items: OrderItemsTable;
  payments: PaymentsTable;
  idempotency_keys: IdempotencyKeysTable;
  audit_log: AuditLogTable;
  audit_head: AuditHeadTable;
  notifications: NotificationsTable;
  maintenance: MaintenanceTable;
}

export type { Generated };
