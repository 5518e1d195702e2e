package handlers

import (
	"fmt"
	"strings"
	"time"

	"github.com/packledger/packledger/domain"
)

// The desk's words, in Simplified Chinese (the default) and English, and
// the forms of amounts and times on its pages.

// lang is a language of the desk.
type lang string

const (
	langZH lang = "zh-CN"
	langEN lang = "en"
)

// parseLang reads a lang cookie or query value; anything else is Chinese.
func parseLang(s string) lang {
	if s == string(langEN) {
		return langEN
	}
	return langZH
}

// words is the desk's catalog: a key, its Chinese and its English. A key
// missing here shows as itself, which TestDesk_EveryWordTranslated
// catches in the templates.
var words = map[string][2]string{
	"app.name":        {"保养套餐台账", "Service package ledger"},
	"app.dealer":      {"经销商", "Dealer"},
	"nav.signout":     {"退出", "Sign out"},
	"nav.lang":        {"English", "中文"},
	"nav.skip":        {"跳到正文", "Skip to content"},
	"role.advisor":    {"服务顾问", "Service advisor"},
	"role.cashier":    {"收银", "Cashier"},
	"role.manager":    {"服务总监", "Service manager"},
	"role.auditor":    {"审计", "Auditor"},
	"nav.find":        {"查找车辆", "Find a vehicle"},
	"nav.sell":        {"销售套餐", "Sell a package"},
	"signin.title":    {"登录", "Sign in"},
	"signin.token":    {"访问令牌", "Access token"},
	"signin.help":     {"请输入管理员发给您的访问令牌。", "Enter the access token your administrator gave you."},
	"signin.submit":   {"登录", "Sign in"},
	"signin.bad":      {"令牌无效，请检查后重试。", "That token is not valid. Check it and try again."},
	"signin.required": {"请输入令牌。", "Enter your token."},

	"nav.queue": {"待收款", "Awaiting payment"},
	"nav.close": {"日结", "Day's close"},

	"queue.title":     {"待付款队列", "Packages awaiting payment"},
	"queue.store":     {"门店 %s：%d 个待付款", "Store %s: %d awaiting payment"},
	"queue.allstores": {"所有门店：%d 个待付款", "All stores: %d awaiting payment"},
	"queue.mine":      {"只看本店", "My store only"},
	"queue.all":       {"查看所有门店", "All stores"},
	"queue.empty":     {"当前没有待付款的套餐。", "Nothing is awaiting payment."},

	"pay.title":      {"收款", "Record a payment"},
	"pay.due":        {"应付余额", "Still due"},
	"pay.take":       {"收款", "Take payment"},
	"pay.sofar":      {"已收款项", "Paid so far"},
	"pay.receipt":    {"收据号", "Receipt number"},
	"pay.method":     {"付款方式", "Method"},
	"pay.amount":     {"金额", "Amount"},
	"pay.amounthelp": {"可分次付款，金额如 1632.00。", "May be paid in parts; write the amount like 1632.00."},
	"pay.submit":     {"确认收款", "Record the payment"},
	"pay.nothingdue": {"该套餐无需再付款。", "Nothing more is due on this package."},
	"pay.done":       {"已收款，收据如下。", "The payment is recorded; its receipt is below."},

	"method.cash":          {"现金", "Cash"},
	"method.card":          {"银行卡", "Card"},
	"method.wechat":        {"微信支付", "WeChat Pay"},
	"method.alipay":        {"支付宝", "Alipay"},
	"method.bank_transfer": {"银行转账", "Bank transfer"},

	"receipt.title":       {"收款收据", "Receipt"},
	"receipt.store":       {"门店", "Store"},
	"receipt.voided":      {"已作废", "voided"},
	"receipt.cashier":     {"收银员", "Cashier"},
	"receipt.signcashier": {"收款人签字", "Cashier's signature"},
	"pkg.id":              {"套餐编号", "Package number"},
	"pkg.contract":        {"打印合同", "Print the contract"},
	"pkg.payments":        {"付款记录", "Payments"},

	"contract.title":         {"保养套餐预售合同", "Service presale contract"},
	"contract.printhelp":     {"用浏览器打印（Ctrl+P）即得纸质合同，一式两份。", "Print it from the browser (Ctrl+P) for the paper copies, one for each side."},
	"contract.no":            {"合同编号", "Contract number"},
	"contract.parties":       {"双方", "Parties"},
	"contract.dealer":        {"经销商", "Dealer"},
	"contract.customer":      {"客户", "Customer"},
	"contract.services":      {"服务内容", "Services"},
	"contract.visits":        {"次数", "Visits"},
	"contract.listprice":     {"单次原价", "List price a visit"},
	"contract.listtotal":     {"原价合计", "List total"},
	"contract.price":         {"套餐价", "Package price"},
	"contract.validity":      {"有效期", "Validity"},
	"contract.refund":        {"退款条款", "Refund terms"},
	"contract.freelook":      {"激活后 %d 天内且未使用任何服务的，全额退款，不收手续费。", "Within %d days of activation, with no visit used, the whole amount paid is refunded with no fee."},
	"contract.proratapolicy": {"退款按未使用部分的余额计算，扣除其 %s%% 作为手续费。", "A refund is the balance of the unused visits, less a fee of %s%% of it."},
	"contract.listpolicy":    {"退款按已付金额减去已使用次数的原价计算（不低于零），再扣除其 %s%% 作为手续费。", "A refund is what was paid less the list price of the visits used (not below zero), less a fee of %s%% of that."},
	"contract.expiry":        {"有效期届满后不能再使用服务，但未使用的金额不作废，客户可申请退款。", "After the validity ends no visit can be used, but the unused money is not forfeited: the customer may claim a refund."},
	"contract.onevehicle":    {"本套餐仅限上述车辆使用。", "The package is for the vehicle above only."},
	"contract.signcustomer":  {"客户签字", "Customer's signature"},
	"contract.signdealer":    {"经销商盖章", "Dealer's signature and seal"},
	"contract.advisor":       {"服务顾问", "Advisor"},

	"close.title":       {"日结", "Day's close"},
	"close.date":        {"营业日", "Business day"},
	"close.show":        {"查看", "Show"},
	"close.of":          {"%s · %s", "%s · %s"},
	"close.allstores":   {"所有门店", "all stores"},
	"close.payments":    {"收款", "Payments"},
	"close.voids":       {"作废", "Voids"},
	"close.net":         {"净额", "Net"},
	"close.none":        {"当日无收款。", "No payment that day."},
	"close.refunds":     {"退款", "Refunds"},
	"close.key":         {"账本签名密钥", "Ledger key"},
	"close.signmanager": {"复核人签字", "Checked by"},

	"nav.plans":     {"套餐方案", "Plans"},
	"nav.liability": {"预收负债", "Liability"},

	"plans.col.service": {"服务项目", "Service"},
	"plans.col.count":   {"次数", "Visits"},
	"plans.col.list":    {"单次原价", "List price a visit"},
	"plans.title":       {"套餐方案", "Plans"},
	"plans.code":        {"方案代码", "Code"},
	"plans.name":        {"方案名称", "Name"},
	"plans.active":      {"在售", "On sale"},
	"plans.retired":     {"已停售", "Retired"},
	"plans.retire":      {"停售", "Retire"},
	"plans.reason":      {"原因", "Reason"},
	"plans.new":         {"新建方案", "A new plan"},
	"plans.what":        {"方案", "The plan"},
	"plans.models":      {"适用车型", "Vehicle models"},
	"plans.modelshelp":  {"用逗号分隔；留空表示所有车型。", "Separated by commas; blank for every model."},
	"plans.giftshelp":   {"每行一项。", "One a line."},
	"plans.terms":       {"价格与条款", "Price and terms"},
	"plans.pricing":     {"定价方式", "Priced by"},
	"plans.byrate":      {"按折扣率", "a discount rate"},
	"plans.byprice":     {"按套餐价", "a price"},
	"plans.rate":        {"折扣率（如 0.85）", "Rate (such as 0.85)"},
	"plans.validity":    {"有效期（月）", "Validity (months)"},
	"plans.policy":      {"退款方式", "Refund policy"},
	"plans.prorata":     {"按未使用余额", "By the unused balance"},
	"plans.listprice":   {"已用次数按原价扣除", "Visits used at list price"},
	"plans.fee":         {"退款手续费率（如 0.10）", "Refund fee rate (such as 0.10)"},
	"plans.freelook":    {"冷静期（天）", "Free-look days"},
	"plans.preview":     {"预览", "Preview"},
	"plans.previewhelp": {"填写服务项目和价格后，这里显示原价合计、套餐价和每次价值。", "Once the services and the price are filled in, the list total, the price and each visit's value show here."},
	"plans.showpreview": {"预览", "Preview"},
	"plans.define":      {"保存方案", "Define the plan"},
	"plans.defined":     {"方案已保存，可以销售。", "The plan is defined and on sale."},
	"plans.retireddone": {"方案已停售。已售出的套餐不受影响。", "The plan is retired. Packages already sold keep it."},

	"refund.title":       {"退款", "Refund"},
	"refund.preview":     {"退款预览", "What the refund pays"},
	"refund.base":        {"计算基数", "Base"},
	"refund.fee":         {"手续费", "Fee"},
	"refund.amount":      {"退款金额", "Refund"},
	"refund.recognized":  {"确认为收入", "Recognized as revenue"},
	"refund.policy":      {"依据", "By"},
	"refund.method":      {"退款方式", "Paid back by"},
	"refund.reason":      {"退款原因", "Reason"},
	"refund.confirm":     {"确认退款 %s", "Refund %s"},
	"refund.done":        {"已退款。", "The package is refunded."},
	"refund.link":        {"退款", "Refund"},
	"policy.pro_rata":    {"按未使用余额", "the unused balance"},
	"policy.list_price":  {"已用次数按原价扣除", "visits used at list price"},
	"policy.free_look":   {"冷静期内全额退款", "the free-look period: all paid back"},
	"policy.not_started": {"未激活，全额退款", "never activated: all paid back"},

	"reverse.title": {"冲销", "Reverse"},
	"reverse.done":  {"核销已冲销，次数已恢复。", "The deduction is reversed; the visit is back."},
	"void.title":    {"作废", "Void"},
	"void.done":     {"付款已作废。", "The payment is voided."},
	"fix.reason":    {"原因", "Reason"},

	"liability.title":     {"预收负债", "Prepaid liability"},
	"liability.from":      {"从", "From"},
	"liability.to":        {"到", "To"},
	"liability.roll":      {"%s 至 %s", "%s to %s"},
	"liability.opening":   {"期初", "Opening"},
	"liability.reversals": {"冲销恢复", "Reversals"},
	"liability.breakage":  {"逾期确认", "Breakage"},
	"liability.closing":   {"期末", "Closing"},
	"liability.chart":     {"每日期末预收负债", "Liability at each day's close"},
	"liability.bydays":    {"按日", "By day"},

	"timeline.title":           {"事件时间线", "Timeline"},
	"nav.audit":                {"审计", "Audit"},
	"timeline.seq":             {"序号", "Seq"},
	"timeline.when":            {"业务时间", "Business time"},
	"timeline.recorded":        {"记录于", "recorded"},
	"timeline.event":           {"事件", "Event"},
	"timeline.who":             {"操作人", "By"},
	"timeline.hash":            {"哈希", "Hash"},
	"audit.title":              {"审计", "Audit"},
	"audit.verifyhelp":         {"逐条核对哈希链和签名，从头重算每个套餐，并与当前余额比对。", "Checks every hash chain and signature, recomputes every package from the start and compares it with the live balances."},
	"audit.runverify":          {"运行完整性检查", "Run the integrity check"},
	"audit.download":           {"下载 JSON", "Download JSON"},
	"audit.exports":            {"导出", "Exports"},
	"audit.historyhelp":        {"每个套餐的事件时间线页面均可下载其历史（JSON）。", "Each package's timeline page downloads its history (JSON)."},
	"audit.cli":                {"整本账的导出：", "The whole log:"},
	"verify.title":             {"完整性检查", "Integrity check"},
	"verify.ok":                {"全部一致：%d 个事件，%d 个套餐。", "All consistent: %d events, %d packages."},
	"verify.bad":               {"发现 %d 处问题，详见下表。", "%d problems found, listed below."},
	"verify.findings":          {"发现的问题", "Findings"},
	"verify.problem":           {"问题", "Problem"},
	"balances.title":           {"指定时点余额", "Balances as of an instant"},
	"balances.asof":            {"时点（经销商时区）", "Instant (the dealer's time zone)"},
	"balances.help":            {"按该时点之前记录的事件重算。", "Recomputed from the events recorded up to that instant."},
	"balances.of":              {"截至 %s，%d 个事件", "As of %s: %d events"},
	"balances.packages":        {"套餐（%d 个）", "Packages (%d)"},
	"event.PackageSold":        {"售出", "Sold"},
	"event.PaymentRecorded":    {"收款", "Payment"},
	"event.PaymentVoided":      {"付款作废", "Payment voided"},
	"event.PackageActivated":   {"生效", "Activated"},
	"event.VisitRedeemed":      {"核销", "Visit deducted"},
	"event.RedemptionReversed": {"核销冲销", "Deduction reversed"},
	"event.PackageRefunded":    {"退款", "Refunded"},
	"event.PackageExpired":     {"过期", "Expired"},
	"event.BreakageRecognized": {"逾期确认收入", "Breakage recognized"},
	"event.BreakageReversed":   {"逾期确认冲回", "Breakage reversed"},
	"find.title":               {"查找车辆", "Find a vehicle"},
	"find.query":               {"车架号（VIN）或车牌号", "VIN or plate"},
	"find.help":                {"车架号为 17 位；车牌号如 沪A12345。", "A VIN has 17 characters; a plate looks like 沪A12345."},
	"find.submit":              {"查找", "Find"},
	"find.none":                {"没有找到该车辆的套餐。", "No package was found for this vehicle."},
	"find.results":             {"找到的套餐", "Packages found"},

	"pkg.title":       {"套餐", "Package"},
	"pkg.customer":    {"客户", "Customer"},
	"pkg.phone":       {"电话", "Phone"},
	"pkg.vehicle":     {"车辆", "Vehicle"},
	"pkg.vin":         {"车架号", "VIN"},
	"pkg.plate":       {"车牌", "Plate"},
	"pkg.model":       {"车型", "Model"},
	"pkg.plan":        {"套餐方案", "Plan"},
	"pkg.status":      {"状态", "Status"},
	"pkg.price":       {"售价", "Price"},
	"pkg.paid":        {"已付", "Paid"},
	"pkg.liability":   {"余额（预收）", "Balance (prepaid)"},
	"pkg.recognized":  {"已确认收入", "Recognized"},
	"pkg.expires":     {"有效期至", "Valid until"},
	"pkg.sold":        {"售出时间", "Sold"},
	"pkg.remaining":   {"剩余次数", "Visits left"},
	"pkg.service":     {"服务项目", "Service"},
	"pkg.left":        {"剩余", "Left"},
	"pkg.of":          {"共", "Of"},
	"pkg.unitvalue":   {"每次价值", "Value of a visit"},
	"pkg.deduct":      {"核销一次", "Deduct a visit"},
	"pkg.notactive":   {"套餐未生效，不能核销。", "The package is not active: no visit can be deducted."},
	"pkg.redemptions": {"核销记录", "Visits deducted"},
	"pkg.ro":          {"工单号", "Repair order"},
	"pkg.mileage":     {"里程（公里）", "Mileage (km)"},
	"pkg.when":        {"时间", "When"},
	"pkg.value":       {"金额", "Value"},
	"pkg.reversed":    {"已冲销", "Reversed"},
	"pkg.none":        {"暂无", "None yet"},
	"pkg.gifts":       {"赠品", "Gifts"},

	"sell.title":      {"销售套餐", "Sell a package"},
	"sell.plan":       {"选择套餐方案", "Choose a plan"},
	"sell.pervisit":   {"每次", "a visit"},
	"sell.validity":   {"激活后 %d 个月内有效", "valid %d months from activation"},
	"sell.customerid": {"客户编号", "Customer number"},
	"sell.name":       {"客户姓名", "Customer name"},
	"sell.submit":     {"开单（待付款）", "Sell (awaiting payment)"},
	"sell.done":       {"已开单，请客户到收银台付款。", "Sold. The customer pays at the cashier's desk."},
	"sell.noplans":    {"目前没有在售的套餐方案。", "No plan is on sale."},

	"deduct.title":   {"确认核销", "Confirm the deduction"},
	"deduct.will":    {"将核销", "This deducts"},
	"deduct.after":   {"核销后", "After it"},
	"deduct.confirm": {"确认核销", "Deduct"},
	"deduct.cancel":  {"返回", "Back"},
	"deduct.repeat":  {"该工单已核销过此项目，确认后不会重复扣次。", "This repair order has already deducted this service: confirming deducts nothing more."},
	"deduct.done":    {"已核销一次。", "One visit was deducted."},
	"deduct.again":   {"该工单已核销过此项目，未重复扣次。", "This repair order had already deducted this service; nothing was deducted twice."},

	"status.awaiting_payment": {"待付款", "Awaiting payment"},
	"status.active":           {"生效中", "Active"},
	"status.used_up":          {"已用完", "Used up"},
	"status.expired":          {"已过期", "Expired"},
	"status.refunded":         {"已退款", "Refunded"},

	"service.oil_change": {"机油保养", "Oil change"},
	"service.inspection": {"检测", "Inspection"},

	"err.title":       {"无法完成", "That did not work"},
	"err.back":        {"返回", "Go back"},
	"err.forbidden":   {"您的角色不能进行此操作。", "Your role may not do this."},
	"err.csrf":        {"页面已过期，请返回刷新后重试。未做任何更改。", "This page had expired. Go back, reload it and try again. Nothing was changed."},
	"err.notfound":    {"没有找到该页面。", "There is no such page."},
	"err.nopackage":   {"没有找到该套餐。", "No such package."},
	"err.unavailable": {"系统暂时无法处理，请稍后用同一页面重试。", "The ledger cannot answer just now. Try again in a moment from the same page."},
	"err.internal":    {"系统出错，请联系管理员。", "Something went wrong. Tell your administrator."},

	"err.no_visits_left":     {"该项目已没有剩余次数。", "No visits of this service are left."},
	"err.package_not_active": {"套餐未生效或已结束。", "The package is not active."},
	"err.unknown_service":    {"该套餐不含此服务项目。", "This package does not include that service."},
	"err.invalid_field":      {"请检查填写的内容。", "Check what was entered."},
	"err.invalid_amount":     {"金额格式不对，应如 1632.00。", "The amount is not valid; write it like 1632.00."},
	"err.overpayment":        {"付款超过应付金额。", "That is more than is owed."},
	"err.duplicate_receipt":  {"该收据号已用于另一笔付款。", "This receipt number was already used for another payment."},
	"err.plan_not_found":     {"没有这个套餐方案。", "There is no such plan."},
	"err.plan_retired":       {"该方案已停售。", "This plan is retired."},
	"err.concurrent_update":  {"别人刚刚修改了这个套餐，请重试。", "Someone changed this package just now. Try again."},
	"err.idempotency_key_reused": {"这张表单已提交过其他内容，请刷新页面后重新填写。",
		"This form was already sent with other content. Reload the page and fill it in again."},
	"err.invalid_request":             {"提交的内容无法识别，请刷新页面后重试。", "What was sent could not be read. Reload the page and try again."},
	"err.unauthorized":                {"请先登录。", "Sign in first."},
	"err.body_too_large":              {"提交的内容太长。", "What was sent is too long."},
	"err.not_found":                   {"没有找到。", "Not found."},
	"err.payment_not_found":           {"没有找到这笔付款。", "No such payment."},
	"err.redemption_not_found":        {"没有找到这次核销。", "No such deduction."},
	"err.plan_exists":                 {"已有同样代码的方案。", "A plan with this code exists already."},
	"err.payment_already_voided":      {"这笔付款已经作废。", "This payment is voided already."},
	"err.visits_redeemed":             {"已有核销记录，付款不能再作废；请改为退款。", "Visits were deducted already: the payment cannot be voided. Refund instead."},
	"err.redemption_already_reversed": {"这次核销已经冲销。", "This deduction is reversed already."},
	"err.package_used_up":             {"套餐已用完，没有可退的余额。", "The package is used up: nothing is left to refund."},
	"err.package_not_expired":         {"套餐尚未过期。", "The package has not expired."},
	"err.breakage_already_recognized": {"逾期余额已确认为收入。", "The breakage is recognized already."},
	"err.model_not_covered":           {"该方案不适用于这个车型。", "This plan is not for this vehicle model."},
	"err.nothing_to_recognize":        {"没有可确认的余额。", "There is nothing to recognize."},
	"err.ledger_unreachable":          {"系统暂时连不上账本，请稍后用同一页面重试。", "The ledger cannot be reached just now. Try again in a moment from the same page."},
}

// text is a key of the catalog in l; with args, the text is a format.
func text(l lang, key string, args ...any) string {
	w, ok := words[key]
	if !ok {
		return key
	}
	s := w[0]
	if l == langEN {
		s = w[1]
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// yuan writes an amount as a dealer's papers do: ¥2,448.00, -¥12.00.
func yuan(m domain.Money) string {
	s := m.String() // two decimals, a leading minus if negative
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.WriteString("¥")
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	b.WriteByte('.')
	b.WriteString(frac)
	return b.String()
}

// clockTime writes an instant in the dealer's time zone, to the minute.
func clockTime(t time.Time, tz *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(tz).Format("2006-01-02 15:04")
}

// day writes an instant's business day in the dealer's time zone.
func day(t time.Time, tz *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(tz).Format("2006-01-02")
}
