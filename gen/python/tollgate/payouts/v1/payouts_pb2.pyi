import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tollgate.type.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PayeeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYEE_KIND_UNSPECIFIED: _ClassVar[PayeeKind]
    PAYEE_KIND_BUILDER: _ClassVar[PayeeKind]
    PAYEE_KIND_PROVIDER: _ClassVar[PayeeKind]

class PayoutSchedule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_SCHEDULE_UNSPECIFIED: _ClassVar[PayoutSchedule]
    PAYOUT_SCHEDULE_MONTHLY: _ClassVar[PayoutSchedule]

class AccountPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_PURPOSE_UNSPECIFIED: _ClassVar[AccountPurpose]
    ACCOUNT_PURPOSE_PENDING: _ClassVar[AccountPurpose]
    ACCOUNT_PURPOSE_AVAILABLE: _ClassVar[AccountPurpose]
    ACCOUNT_PURPOSE_PAID_OUT: _ClassVar[AccountPurpose]
    ACCOUNT_PURPOSE_CLAWBACK: _ClassVar[AccountPurpose]
    ACCOUNT_PURPOSE_FEE_REVENUE: _ClassVar[AccountPurpose]
    ACCOUNT_PURPOSE_CLEARING: _ClassVar[AccountPurpose]

class TransferReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_REASON_UNSPECIFIED: _ClassVar[TransferReason]
    TRANSFER_REASON_EARNINGS: _ClassVar[TransferReason]
    TRANSFER_REASON_PLATFORM_FEE: _ClassVar[TransferReason]
    TRANSFER_REASON_CLAWBACK: _ClassVar[TransferReason]
    TRANSFER_REASON_FEE_REVERSAL: _ClassVar[TransferReason]
    TRANSFER_REASON_HOLD_RELEASE: _ClassVar[TransferReason]
    TRANSFER_REASON_CLAWBACK_OFFSET: _ClassVar[TransferReason]
    TRANSFER_REASON_PAYOUT: _ClassVar[TransferReason]
    TRANSFER_REASON_PAYOUT_FAILED: _ClassVar[TransferReason]

class PayoutState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_STATE_UNSPECIFIED: _ClassVar[PayoutState]
    PAYOUT_STATE_PENDING: _ClassVar[PayoutState]
    PAYOUT_STATE_PAID: _ClassVar[PayoutState]
    PAYOUT_STATE_FAILED: _ClassVar[PayoutState]
PAYEE_KIND_UNSPECIFIED: PayeeKind
PAYEE_KIND_BUILDER: PayeeKind
PAYEE_KIND_PROVIDER: PayeeKind
PAYOUT_SCHEDULE_UNSPECIFIED: PayoutSchedule
PAYOUT_SCHEDULE_MONTHLY: PayoutSchedule
ACCOUNT_PURPOSE_UNSPECIFIED: AccountPurpose
ACCOUNT_PURPOSE_PENDING: AccountPurpose
ACCOUNT_PURPOSE_AVAILABLE: AccountPurpose
ACCOUNT_PURPOSE_PAID_OUT: AccountPurpose
ACCOUNT_PURPOSE_CLAWBACK: AccountPurpose
ACCOUNT_PURPOSE_FEE_REVENUE: AccountPurpose
ACCOUNT_PURPOSE_CLEARING: AccountPurpose
TRANSFER_REASON_UNSPECIFIED: TransferReason
TRANSFER_REASON_EARNINGS: TransferReason
TRANSFER_REASON_PLATFORM_FEE: TransferReason
TRANSFER_REASON_CLAWBACK: TransferReason
TRANSFER_REASON_FEE_REVERSAL: TransferReason
TRANSFER_REASON_HOLD_RELEASE: TransferReason
TRANSFER_REASON_CLAWBACK_OFFSET: TransferReason
TRANSFER_REASON_PAYOUT: TransferReason
TRANSFER_REASON_PAYOUT_FAILED: TransferReason
PAYOUT_STATE_UNSPECIFIED: PayoutState
PAYOUT_STATE_PENDING: PayoutState
PAYOUT_STATE_PAID: PayoutState
PAYOUT_STATE_FAILED: PayoutState

class Payee(_message.Message):
    __slots__ = ("payee_id", "currency_code", "kind", "minimum_amount", "method_reference", "hold_days", "schedule", "create_time", "update_time")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    HOLD_DAYS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    currency_code: str
    kind: PayeeKind
    minimum_amount: _money_pb2.Money
    method_reference: str
    hold_days: int
    schedule: PayoutSchedule
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, payee_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., kind: _Optional[_Union[PayeeKind, str]] = ..., minimum_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., method_reference: _Optional[str] = ..., hold_days: _Optional[int] = ..., schedule: _Optional[_Union[PayoutSchedule, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePayeeRequest(_message.Message):
    __slots__ = ("request_id", "payee")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payee: Payee
    def __init__(self, request_id: _Optional[str] = ..., payee: _Optional[_Union[Payee, _Mapping]] = ...) -> None: ...

class CreatePayeeResponse(_message.Message):
    __slots__ = ("payee",)
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    payee: Payee
    def __init__(self, payee: _Optional[_Union[Payee, _Mapping]] = ...) -> None: ...

class UpdatePayeeRequest(_message.Message):
    __slots__ = ("request_id", "payee")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payee: Payee
    def __init__(self, request_id: _Optional[str] = ..., payee: _Optional[_Union[Payee, _Mapping]] = ...) -> None: ...

class UpdatePayeeResponse(_message.Message):
    __slots__ = ("payee",)
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    payee: Payee
    def __init__(self, payee: _Optional[_Union[Payee, _Mapping]] = ...) -> None: ...

class GetPayeeRequest(_message.Message):
    __slots__ = ("payee_id", "currency_code")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    currency_code: str
    def __init__(self, payee_id: _Optional[str] = ..., currency_code: _Optional[str] = ...) -> None: ...

class GetPayeeResponse(_message.Message):
    __slots__ = ("payee",)
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    payee: Payee
    def __init__(self, payee: _Optional[_Union[Payee, _Mapping]] = ...) -> None: ...

class ListPayeesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPayeesResponse(_message.Message):
    __slots__ = ("payees", "next_page_token")
    PAYEES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payees: _containers.RepeatedCompositeFieldContainer[Payee]
    next_page_token: str
    def __init__(self, payees: _Optional[_Iterable[_Union[Payee, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("owner", "currency_code", "purpose")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    owner: str
    currency_code: str
    purpose: AccountPurpose
    def __init__(self, owner: _Optional[str] = ..., currency_code: _Optional[str] = ..., purpose: _Optional[_Union[AccountPurpose, str]] = ...) -> None: ...

class AccountBalance(_message.Message):
    __slots__ = ("account", "balance")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    account: Account
    balance: _money_pb2.Money
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("payee_id", "currency_code")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    currency_code: str
    def __init__(self, payee_id: _Optional[str] = ..., currency_code: _Optional[str] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("accounts", "payable", "owed")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    PAYABLE_FIELD_NUMBER: _ClassVar[int]
    OWED_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountBalance]
    payable: _money_pb2.Money
    owed: _money_pb2.Money
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountBalance, _Mapping]]] = ..., payable: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., owed: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("id", "debit_account", "credit_account", "amount", "reason", "source_kind", "source_id", "corrects_transfer_id", "effective_time", "post_time", "available_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECTS_TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    debit_account: Account
    credit_account: Account
    amount: _money_pb2.Money
    reason: TransferReason
    source_kind: str
    source_id: str
    corrects_transfer_id: str
    effective_time: _timestamp_pb2.Timestamp
    post_time: _timestamp_pb2.Timestamp
    available_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., debit_account: _Optional[_Union[Account, _Mapping]] = ..., credit_account: _Optional[_Union[Account, _Mapping]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[_Union[TransferReason, str]] = ..., source_kind: _Optional[str] = ..., source_id: _Optional[str] = ..., corrects_transfer_id: _Optional[str] = ..., effective_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., post_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., available_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTransfersRequest(_message.Message):
    __slots__ = ("payee_id", "currency_code", "purpose", "period", "source_id", "page_size", "page_token")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    currency_code: str
    purpose: AccountPurpose
    period: str
    source_id: str
    page_size: int
    page_token: str
    def __init__(self, payee_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., purpose: _Optional[_Union[AccountPurpose, str]] = ..., period: _Optional[str] = ..., source_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTransfersResponse(_message.Message):
    __slots__ = ("transfers", "next_page_token")
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transfers: _containers.RepeatedCompositeFieldContainer[Transfer]
    next_page_token: str
    def __init__(self, transfers: _Optional[_Iterable[_Union[Transfer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SyncEarningsRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class SyncEarningsResponse(_message.Message):
    __slots__ = ("applied_count", "last_sequence")
    APPLIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    applied_count: int
    last_sequence: int
    def __init__(self, applied_count: _Optional[int] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class ReleaseHoldsRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class ReleaseHoldsResponse(_message.Message):
    __slots__ = ("released_count",)
    RELEASED_COUNT_FIELD_NUMBER: _ClassVar[int]
    released_count: int
    def __init__(self, released_count: _Optional[int] = ...) -> None: ...

class Payout(_message.Message):
    __slots__ = ("id", "payee_id", "period", "amount", "available_consumed", "clawback_offset", "method_reference", "state", "external_reference", "failure_reason", "create_time", "settle_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_CONSUMED_FIELD_NUMBER: _ClassVar[int]
    CLAWBACK_OFFSET_FIELD_NUMBER: _ClassVar[int]
    METHOD_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SETTLE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    payee_id: str
    period: str
    amount: _money_pb2.Money
    available_consumed: _money_pb2.Money
    clawback_offset: _money_pb2.Money
    method_reference: str
    state: PayoutState
    external_reference: str
    failure_reason: str
    create_time: _timestamp_pb2.Timestamp
    settle_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., payee_id: _Optional[str] = ..., period: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., available_consumed: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., clawback_offset: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., method_reference: _Optional[str] = ..., state: _Optional[_Union[PayoutState, str]] = ..., external_reference: _Optional[str] = ..., failure_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., settle_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunPayoutsRequest(_message.Message):
    __slots__ = ("request_id", "period")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    period: str
    def __init__(self, request_id: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class RunPayoutsResponse(_message.Message):
    __slots__ = ("period", "created_count", "payout_count", "totals")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    period: str
    created_count: int
    payout_count: int
    totals: _containers.RepeatedCompositeFieldContainer[_money_pb2.Money]
    def __init__(self, period: _Optional[str] = ..., created_count: _Optional[int] = ..., payout_count: _Optional[int] = ..., totals: _Optional[_Iterable[_Union[_money_pb2.Money, _Mapping]]] = ...) -> None: ...

class ListPayoutsRequest(_message.Message):
    __slots__ = ("payee_id", "period", "state", "page_size", "page_token")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    period: str
    state: PayoutState
    page_size: int
    page_token: str
    def __init__(self, payee_id: _Optional[str] = ..., period: _Optional[str] = ..., state: _Optional[_Union[PayoutState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPayoutsResponse(_message.Message):
    __slots__ = ("payouts", "next_page_token")
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payouts: _containers.RepeatedCompositeFieldContainer[Payout]
    next_page_token: str
    def __init__(self, payouts: _Optional[_Iterable[_Union[Payout, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MarkPayoutPaidRequest(_message.Message):
    __slots__ = ("request_id", "payout_id", "external_reference")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payout_id: str
    external_reference: str
    def __init__(self, request_id: _Optional[str] = ..., payout_id: _Optional[str] = ..., external_reference: _Optional[str] = ...) -> None: ...

class MarkPayoutPaidResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: Payout
    def __init__(self, payout: _Optional[_Union[Payout, _Mapping]] = ...) -> None: ...

class MarkPayoutFailedRequest(_message.Message):
    __slots__ = ("request_id", "payout_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payout_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., payout_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class MarkPayoutFailedResponse(_message.Message):
    __slots__ = ("payout",)
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    payout: Payout
    def __init__(self, payout: _Optional[_Union[Payout, _Mapping]] = ...) -> None: ...

class ExportPayoutRunRequest(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: str
    def __init__(self, period: _Optional[str] = ...) -> None: ...

class ExportPayoutRunResponse(_message.Message):
    __slots__ = ("csv", "payout_count")
    CSV_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_COUNT_FIELD_NUMBER: _ClassVar[int]
    csv: str
    payout_count: int
    def __init__(self, csv: _Optional[str] = ..., payout_count: _Optional[int] = ...) -> None: ...

class StatementSummary(_message.Message):
    __slots__ = ("revenue", "provider_cost", "platform_fee", "earnings")
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_COST_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    EARNINGS_FIELD_NUMBER: _ClassVar[int]
    revenue: _money_pb2.Money
    provider_cost: _money_pb2.Money
    platform_fee: _money_pb2.Money
    earnings: _money_pb2.Money
    def __init__(self, revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., provider_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., earnings: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class StatementLedger(_message.Message):
    __slots__ = ("opening_balance", "earnings", "clawbacks", "payouts", "closing_balance")
    OPENING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    EARNINGS_FIELD_NUMBER: _ClassVar[int]
    CLAWBACKS_FIELD_NUMBER: _ClassVar[int]
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    CLOSING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    opening_balance: _money_pb2.Money
    earnings: _money_pb2.Money
    clawbacks: _money_pb2.Money
    payouts: _money_pb2.Money
    closing_balance: _money_pb2.Money
    def __init__(self, opening_balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., earnings: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., clawbacks: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., payouts: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., closing_balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class StatementLine(_message.Message):
    __slots__ = ("dimension", "key", "earnings")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EARNINGS_FIELD_NUMBER: _ClassVar[int]
    dimension: str
    key: str
    earnings: _money_pb2.Money
    def __init__(self, dimension: _Optional[str] = ..., key: _Optional[str] = ..., earnings: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class Statement(_message.Message):
    __slots__ = ("payee_id", "currency_code", "period", "summary", "ledger", "lines")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    currency_code: str
    period: str
    summary: StatementSummary
    ledger: StatementLedger
    lines: _containers.RepeatedCompositeFieldContainer[StatementLine]
    def __init__(self, payee_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., period: _Optional[str] = ..., summary: _Optional[_Union[StatementSummary, _Mapping]] = ..., ledger: _Optional[_Union[StatementLedger, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[StatementLine, _Mapping]]] = ...) -> None: ...

class GetStatementRequest(_message.Message):
    __slots__ = ("payee_id", "currency_code", "period")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    currency_code: str
    period: str
    def __init__(self, payee_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class GetStatementResponse(_message.Message):
    __slots__ = ("statement",)
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    statement: Statement
    def __init__(self, statement: _Optional[_Union[Statement, _Mapping]] = ...) -> None: ...

class ExportStatementRequest(_message.Message):
    __slots__ = ("payee_id", "currency_code", "period")
    PAYEE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    payee_id: str
    currency_code: str
    period: str
    def __init__(self, payee_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class ExportStatementResponse(_message.Message):
    __slots__ = ("csv",)
    CSV_FIELD_NUMBER: _ClassVar[int]
    csv: str
    def __init__(self, csv: _Optional[str] = ...) -> None: ...

class ReconcileCheck(_message.Message):
    __slots__ = ("name", "scope", "expected", "actual", "difference", "ok")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    name: str
    scope: str
    expected: str
    actual: str
    difference: str
    ok: bool
    def __init__(self, name: _Optional[str] = ..., scope: _Optional[str] = ..., expected: _Optional[str] = ..., actual: _Optional[str] = ..., difference: _Optional[str] = ..., ok: _Optional[bool] = ...) -> None: ...

class ReconcileRequest(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: str
    def __init__(self, period: _Optional[str] = ...) -> None: ...

class ReconcileResponse(_message.Message):
    __slots__ = ("period", "clean", "checks")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CLEAN_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    period: str
    clean: bool
    checks: _containers.RepeatedCompositeFieldContainer[ReconcileCheck]
    def __init__(self, period: _Optional[str] = ..., clean: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[ReconcileCheck, _Mapping]]] = ...) -> None: ...
